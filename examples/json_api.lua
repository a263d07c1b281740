-- A small JSON API and a client calling it, in one script: corun.http.serve
-- keeps a todo list in memory (GET /todos, POST /todos, GET /todos/N,
-- DELETE /todos/N), bodies encoded with lua-cjson; three client tasks
-- call it concurrently with corun.http, then one lists the result.
-- Run: corun examples/json_api.lua   (needs lua-cjson: apt install lua-cjson)
local corun = require "corun"
local cjson = require "cjson"

local todos, next_id = {}, 1
local JSON = { ["Content-Type"] = "application/json" }

local function reply(status, value)
  return status, cjson.encode(value), JSON
end

local api = assert(corun.http.serve("127.0.0.1", 0, function(req)
  local id = tonumber(req.path:match("^/todos/(%d+)$"))
  if req.path == "/todos" and req.method == "GET" then
    local list = {}
    for _, t in pairs(todos) do list[#list + 1] = t end
    table.sort(list, function(a, b) return a.id < b.id end)
    return reply(200, list)
  elseif req.path == "/todos" and req.method == "POST" then
    local ok, item = pcall(cjson.decode, req.body)
    if not ok or type(item) ~= "table" or type(item.title) ~= "string" then
      return reply(400, { error = "a JSON object with a title expected" })
    end
    local t = { id = next_id, title = item.title, done = false }
    todos[t.id], next_id = t, next_id + 1
    return reply(201, t)
  elseif id and req.method == "GET" then
    if not todos[id] then return reply(404, { error = "no such todo" }) end
    return reply(200, todos[id])
  elseif id and req.method == "DELETE" then
    todos[id] = nil
    return 204, ""
  end
  return reply(404, { error = "not found" })
end))
local base = "http://127.0.0.1:" .. api.port

-- A client call: method, path, [value] -> status, decoded body
local function call(method, path, value)
  local resp = assert(corun.http.request {
    method = method, url = base .. path, headers = JSON,
    body = value ~= nil and cjson.encode(value) or nil,
  })
  local body = resp.body ~= "" and cjson.decode(resp.body) or nil
  return resp.status, body
end

-- Three tasks add their todos at the same time; ids follow arrival order,
-- so each task reports only its titles.
local tasks = {}
for i, titles in ipairs { { "buy bread", "bake" }, { "write docs" }, { "ship" } } do
  tasks[i] = corun.spawn(function()
    for _, title in ipairs(titles) do
      local status, t = call("POST", "/todos", { title = title })
      assert(status == 201 and t.title == title)
    end
    return #titles
  end)
end
print("added:", table.concat(corun.gather(table.unpack(tasks)), " "))

local status, err = call("POST", "/todos", { nope = true })
print("bad request:", status, err.error)
local list
status, list = call("GET", "/todos")
print("list:", status, #list)
local titles = {}
for _, t in ipairs(list) do titles[#titles + 1] = t.title end
table.sort(titles)
print("titles:", table.concat(titles, ", "))
local first = ("/todos/%d"):format(list[1].id)  -- cjson gives floats
print("delete:", (call("DELETE", first)))
print("gone:", call("GET", first) == 404)
status, list = call("GET", "/todos")
print("left:", #list)
api:close()
