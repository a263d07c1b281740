-- spec/pki.lua: a test PKI made with `openssl` for the TLS and HTTP specs.
--   local dir = require("pki").make()
-- gives dir/ca.pem (a CA), dir/other_ca.pem (an unrelated CA),
-- dir/srv.pem + srv.key (localhost and 127.0.0.1, signed by ca.pem) and
-- dir/client.pem + client.key (a client certificate signed by ca.pem).
-- The directory is made once (per insulated spec file) and removed by
-- pki.cleanup() (call it from the spec's teardown).

local M = {}
local dir

local function sh(cmd)
  -- without an ASan LD_PRELOAD (the specs under ASan): openssl would
  -- report its own leaks
  local ok = os.execute("unset LD_PRELOAD; " .. cmd .. " >/dev/null 2>&1")
  if not ok then error("pki: failed: " .. cmd, 2) end
end

function M.make()
  if dir then return dir end
  local p = io.popen("unset LD_PRELOAD; mktemp -d /tmp/corun-pki.XXXXXX")
  dir = p:read("l")
  p:close()
  local d = dir
  local req = "openssl req -newkey rsa:2048 -nodes "
  sh(("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key "
      .. "-out ca.pem -days 2 -subj '/CN=corun test CA'"):format(d))
  sh(("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout other_ca.key "
      .. "-out other_ca.pem -days 2 -subj '/CN=another CA'"):format(d))
  sh(("cd %s && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > srv.ext"
      .. " && printf 'extendedKeyUsage=clientAuth\\n' > client.ext"):format(d))
  for _, name in ipairs { "srv", "client" } do
    sh(("cd %s && %s -keyout %s.key -out %s.csr -subj '/CN=%s'"):format(
      d, req, name, name, name == "srv" and "localhost" or "corun client"))
    sh(("cd %s && openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key "
        .. "-CAcreateserial -out %s.pem -days 2 -extfile %s.ext"):format(
      d, name, name, name))
  end
  return d
end

function M.cleanup()
  if dir then
    sh("rm -rf '" .. dir .. "'")  -- rm under an ASan preload would abort
    dir = nil
  end
end

return M
