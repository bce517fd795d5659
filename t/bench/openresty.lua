-- Target (c) of t/bench/edge: the same ingest path as ngx_http_loyalty_module
-- written the way an experienced OpenResty developer would, on Debian's
-- packages only (libnginx-mod-http-lua + ndk, lua-nginx-redis,
-- lua-nginx-string, lua-cjson).  It is a yardstick, not a product.
--
-- Per request: read the body, verify Standard Webhooks (HMAC-SHA256 of
-- "id.ts.body" with a reused HMAC context, base64, constant-time compare,
-- +-300 s window), parse the JSON and build the envelope v1 fields, then ONE
-- Redis round trip (EVALSHA: SET NX EX dedupe, cap check, XADD) over a
-- pooled connection, and answer 202 {"id","corr"} only after Redis replied.
--
-- Loaded once in the master by init_by_lua (require), so workers inherit the
-- compiled code and never read files after fork.

local ffi    = require "ffi"
local cjson  = require "cjson.safe"
local redis  = require "nginx.redis"    -- lua-resty-redis as Debian ships it
local rstr   = require "nginx.string"   -- lua-resty-string: to_hex

local C = ffi.load("crypto")

ffi.cdef [[
typedef struct evp_md_st   EVP_MD;
typedef struct hmac_ctx_st HMAC_CTX;
const EVP_MD *EVP_sha256(void);
HMAC_CTX *HMAC_CTX_new(void);
int HMAC_Init_ex(HMAC_CTX *ctx, const void *key, int len, const EVP_MD *md,
                 void *impl);
int HMAC_Update(HMAC_CTX *ctx, const unsigned char *data, size_t len);
int HMAC_Final(HMAC_CTX *ctx, unsigned char *md, unsigned int *len);
int CRYPTO_memcmp(const void *a, const void *b, size_t len);
]]

local _M = {}

local conf = {
    redis_host  = "127.0.0.1",
    redis_port  = 6379,
    timeout     = 1000,           -- ms, like loyalty_redis timeout=1s
    pool_size   = 64,
    idle        = 60000,
    window      = 345600,         -- dedupe window, 96 h
    cap         = 1000000,        -- stream cap
    tolerance   = 300,
    retry_after = "5",
}

-- KEYS[1] seen key, KEYS[2] stream; ARGV[1] window, ARGV[2] cap,
-- ARGV[3..] envelope field/value pairs.  {0} duplicate, {-1} at cap
-- (the seen key is released so the sender's retry is not a "duplicate"),
-- {1, entry id} accepted.
local SCRIPT = [[
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return {0}
end
if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return {-1}
end
return {1, redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))}
]]
local SCRIPT_SHA = rstr.to_hex(ngx.sha1_bin(SCRIPT))

local CANONICAL = {}
for t in ([[customer.created customer.updated customer.deleted order.created
  order.paid order.refunded order.cancelled points.earned points.redeemed
  points.adjusted tier.changed referral.created referral.completed
  reward.issued reward.redeemed consent.changed receipt.created]]):gmatch("%S+")
do
    CANONICAL[t] = true
end

local hmac_ctx                     -- per worker (created lazily after fork)
local md  = ffi.new("unsigned char[32]")
local mdl = ffi.new("unsigned int[1]")
local key                          -- raw key bytes (whsec_ base64-decoded)

function _M.configure(opts)
    for k, v in pairs(opts) do conf[k] = v end
    local s = conf.secret:gsub("^whsec_", "")
    key = ngx.decode_base64(s)
    assert(key, "secret is not base64")
end

local function hmac_b64(id, ts, body)
    if hmac_ctx == nil then
        hmac_ctx = C.HMAC_CTX_new()
        C.HMAC_Init_ex(hmac_ctx, key, #key, C.EVP_sha256(), nil)
    else
        C.HMAC_Init_ex(hmac_ctx, nil, 0, nil, nil)   -- same key, reset
    end
    -- feed the three parts; never build "id.ts.body" as a new string
    C.HMAC_Update(hmac_ctx, id, #id)
    C.HMAC_Update(hmac_ctx, ".", 1)
    C.HMAC_Update(hmac_ctx, ts, #ts)
    C.HMAC_Update(hmac_ctx, ".", 1)
    C.HMAC_Update(hmac_ctx, body, #body)
    C.HMAC_Final(hmac_ctx, md, mdl)
    return ngx.encode_base64(ffi.string(md, 32))
end

local function verify(id, ts, sigs, body)
    if not id or not ts or not sigs or #id > 200 or id:find(".", 1, true) then
        return false
    end
    local t = tonumber(ts)
    if not t or math.abs(ngx.time() - t) > conf.tolerance then
        return false
    end
    local expect = hmac_b64(id, ts, body)
    local ok = false
    for s in sigs:gmatch("%S+") do          -- "v1,xxx v1,yyy ..."
        if s:sub(1, 3) == "v1," and #s == #expect + 3
           and C.CRYPTO_memcmp(s:sub(4), expect, #expect) == 0
        then
            ok = true                       -- keep going: constant work
        end
    end
    return ok
end

local function reply(status, tbl, corr)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.header["X-Correlation-ID"] = corr
    if status == 503 then ngx.header["Retry-After"] = conf.retry_after end
    ngx.print(cjson.encode(tbl))
    return ngx.exit(status)
end

local function str(v)
    return type(v) == "string" and v or nil
end

function _M.handle(store)
    local h = ngx.req.get_headers()
    local corr = h["x-request-id"]
    if type(corr) ~= "string" or not corr:find("^[%w._:/+=-]+$")
       or #corr > 128 then
        corr = ngx.var.request_id
    end

    ngx.req.read_body()
    local body = ngx.req.get_body_data()    -- nil if it went to a file
    local id, ts = h["webhook-id"], h["webhook-timestamp"]
    if not body or not verify(id, ts, h["webhook-signature"], body) then
        ngx.log(ngx.INFO, "bad signature corr=", corr)
        return reply(401, { error = "bad_signature",
                            message = "signature mismatch" }, corr)
    end

    local doc = cjson.decode(body)
    if type(doc) ~= "table" then
        return reply(400, { error = "bad_json",
                            message = "body is not a JSON object" }, corr)
    end

    -- envelope v1, as the module's "standard" sender builds it
    local data = type(doc.data) == "table" and doc.data or doc
    local topic = str(doc.type)
    local who = type(data.customer) == "table" and data.customer or data
    local f = { "v", "1", "id", id, "src", "standard", "store", store,
                "type", (topic and CANONICAL[topic]) and topic or "unknown" }
    local n = #f
    local function put(k, v)
        if v then f[n + 1] = k; f[n + 2] = v; n = n + 2 end
    end
    put("topic", topic)
    put("occurred", str(doc.timestamp) or ngx.utctime():gsub(" ", "T") .. "Z")
    put("received", string.format("%d", ngx.now() * 1000))
    put("corr", corr)
    local email = str(who.email)
    put("email", email and email:lower():match("^%s*(.-)%s*$"))
    put("ext_id", str(who.ext_id))
    put("store_cid", str(who.store_cid))
    put("phone", str(who.phone))
    put("data", cjson.encode(data))

    local red = redis:new()
    red:set_timeout(conf.timeout)          -- 0.27 has no set_timeouts()
    local ok, err = red:connect(conf.redis_host, conf.redis_port)
    if not ok then
        ngx.log(ngx.WARN, "redis connect: ", err, " corr=", corr)
        return reply(503, { error = "unavailable" }, corr)
    end

    local pre = "loyalty:{" .. store .. "}:"
    local res
    res, err = red:evalsha(SCRIPT_SHA, 2, pre .. "seen:" .. id, pre .. "in",
                           conf.window, conf.cap, unpack(f, 1, n))
    if not res and err and err:find("NOSCRIPT", 1, true) then
        res, err = red:eval(SCRIPT, 2, pre .. "seen:" .. id, pre .. "in",
                            conf.window, conf.cap, unpack(f, 1, n))
    end
    if not res then
        ngx.log(ngx.WARN, "redis: ", err, " corr=", corr)
        red:close()
        return reply(503, { error = "unavailable" }, corr)
    end
    red:set_keepalive(conf.idle, conf.pool_size)

    if res[1] == 0 then
        return reply(200, { status = "duplicate", id = id, corr = corr }, corr)
    elseif res[1] == -1 then
        return reply(503, { error = "backpressure" }, corr)
    end
    return reply(202, { id = id, corr = corr }, corr)
end

return _M
