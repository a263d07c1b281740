-- A small crawler: the producer/consumer shape with corun.http. A local
-- site (corun.http.serve on port 0) has 20 pages linking to each other;
-- the seed URL goes into a corun.queue, 8 worker tasks take URLs, fetch
-- them with corun.http.get, put the links they find back on the queue
-- (each URL once) and write a line per page as it arrives (on stderr: the
-- order depends on timing). q:join() waits until every page queued has
-- been done; a global corun.timeout bounds the whole crawl. The summary
-- on stdout is sorted, so it is the same on every run.
-- Run: corun examples/crawler.lua
local corun = require "corun"

local PAGES = 20

-- The site: /page/N links to /page/1 and to N*2 and N*2+1 (a binary tree,
-- up to 20); /page/13 is missing (404).
local site = assert(corun.http.serve("127.0.0.1", 0, function(req)
  local n = tonumber(req.path:match("^/page/(%d+)$"))
  if not n or n > PAGES or n == 13 then return 404, "no such page" end
  corun.sleep(0.01 * (n % 3))        -- some pages are slower than others
  local links = { '<a href="/page/1">home</a>' }
  for _, k in ipairs { n * 2, n * 2 + 1 } do
    if k <= PAGES then
      links[#links + 1] = ('<a href="/page/%d">page %d</a>'):format(k, k)
    end
  end
  return 200, ("<h1>Page %d</h1>%s"):format(n, table.concat(links)),
         { ["Content-Type"] = "text/html" }
end))
local base = "http://127.0.0.1:" .. site.port

local q = corun.queue()
local seen, results = {}, {}

local function enqueue(url)
  if not seen[url] then
    seen[url] = true
    q:put(url)
  end
end

local function worker(id)
  while true do
    local url = q:get()
    local resp, err = corun.http.get(base .. url, { timeout = 5 })
    if resp then
      results[url] = resp.status
      io.stderr:write(("worker %d: %s %d (%d bytes)\n"):format(id, url,
                      resp.status, #resp.body))
      for link in resp.body:gmatch('href="([^"]+)"') do enqueue(link) end
    else
      results[url] = err
    end
    q:task_done()
  end
end

corun.timeout(30, function()
  local workers = {}
  for i = 1, 8 do workers[i] = corun.spawn(worker, i) end
  enqueue("/page/1")
  q:join()                             -- every queued URL has been fetched
  for _, w in ipairs(workers) do w:cancel() end
end)
site:close()

local urls = {}
for url in pairs(results) do urls[#urls + 1] = url end
table.sort(urls, function(a, b)
  return tonumber(a:match("%d+")) < tonumber(b:match("%d+"))
end)
local ok, missing = 0, 0
for _, url in ipairs(urls) do
  print(url, results[url])
  if results[url] == 200 then ok = ok + 1 else missing = missing + 1 end
end
print(("%d pages fetched, %d missing"):format(ok, missing))
