-- wrk 4.1 script for t/bench/edge.
--
--   wrk -t T -c C -d D --latency -s wrk.lua URL -- BODY_PREFIX IDS HOST
--
-- Every request is a Standard Webhooks POST of a ~2 KB JSON order event with
-- a UNIQUE webhook-id (a repeated id would take the cheap "duplicate" path).
-- Signing per request in wrk's Lua is far too slow, so t/bench/edge pre-signs
-- the deliveries: IDS.<n> (n = 0..T-1) belongs to wrk thread n alone and
-- holds fixed-width records "id ts signature\n".  The body of a delivery is
-- BODY_PREFIX .. id .. '"}' (it ends with "ref":"<id>"}).
--
-- Traps avoided (perf_reliability.md 1.2 and Appendix A, plus two found
-- here):
-- * no response() hook: it makes wrk hand every response to Lua;
-- * no wrk.format() per request (it walks a header table);
-- * wrk starts thread 0 before it has run init() for thread 1, and starts
--   its clock only after all init()s: init() must be quick, so it only
--   slurps the file; records are cut out in request();
-- * LuaJIT (OpenResty's luajit2, which Debian's wrk links) hashes a long
--   string from a few 8-byte samples plus its LAST 8 bytes; strings that
--   differ only in the middle all collide and interning them is quadratic
--   (measured: 20k such 2.4 KB strings took 30 s).  Hence the id at the end
--   of the body: the last 8 bytes of every request differ.

local counter = 0
local threads = {}

function setup(thread)
    thread:set("tid", counter)
    counter = counter + 1
    table.insert(threads, thread)
end

local head, bpre, bsuf, recs, reclen, idlen, n, i
wraps = 0                 -- global: done() reads it with thread:get()

function init(args)
    local f = assert(io.open(args[1], "rb"))
    bpre = f:read("*a")
    f:close()
    bsuf = '"}'

    f = assert(io.open(args[2] .. "." .. tid, "rb"))
    recs = f:read("*a")
    f:close()

    reclen = recs:find("\n", 1, true)         -- record length incl. newline
    idlen = recs:find(" ", 1, true) - 1
    n, i = #recs / reclen, 0
    assert(n >= 1 and n % 1 == 0, "bad ids file for thread " .. tid)

    head = "POST " .. wrk.path .. " HTTP/1.1\r\n"
        .. "Host: " .. (args[3] or "localhost") .. "\r\n"
        .. "Content-Type: application/json\r\n"
        .. "Content-Length: " .. (#bpre + idlen + #bsuf) .. "\r\n"
end

function request()
    if i == n then
        i = 0
        wraps = wraps + 1
    end
    local off = i * reclen
    i = i + 1
    local id = recs:sub(off + 1, off + idlen)
    local ts = recs:sub(off + idlen + 2, off + idlen + 11)
    local sig = recs:sub(off + idlen + 13, off + reclen - 1)
    return head .. "webhook-id: " .. id .. "\r\nwebhook-timestamp: " .. ts
        .. "\r\nwebhook-signature: v1," .. sig .. "\r\n\r\n"
        .. bpre .. id .. bsuf
end

function done(summary, latency, requests)
    local w = 0
    for _, t in ipairs(threads) do
        w = w + (t:get("wraps") or 0)
    end
    local e = summary.errors
    io.write(string.format(
        "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d " ..
        "p99_us=%d max_us=%d err_connect=%d err_read=%d err_write=%d " ..
        "err_status=%d err_timeout=%d wraps=%d\n",
        summary.requests, summary.duration,
        summary.requests / summary.duration * 1e6,
        latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency.max,
        e.connect, e.read, e.write, e.status, e.timeout, w))
end
