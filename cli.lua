local corun = require "corun"
local url = "http://127.0.0.1:35789/"
local t0 = corun.time()
corun.group(function(g)
  for i = 1, 64 do g:spawn(function()
    for j = 1, 10000 // 64 + (i <= 10000 % 64 and 1 or 0) do assert(corun.http.get(url)) end
  end) end
end)
print(("corun client: %.0f req/s"):format(10000 / (corun.time() - t0)))
