'use strict';

// The sandbox's core: one HTTP server on loopback that hosts the emulated
// APIs (one module per provider, each under its own path prefix), keeps
// a log of every request, injects faults and enforces rate limits.  The
// emulations keep their state in memory; tests read it back through the
// control API under /_sandbox.

const http = require('http');
const { URL } = require('url');

const MAX_BODY = 64 * 1024 * 1024;
const LOG_BODY_MAX = 64 * 1024;

class HttpError extends Error {
    constructor(status, body, headers) {
        super(typeof body === 'string' ? body : JSON.stringify(body));
        this.status = status;
        this.body = body;
        this.headers = headers || {};
    }
}

// '/v2/customers/:id/points' -> { re, names }
function compilePattern(pattern) {
    const names = [];
    const src = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&')
        .replace(/:([A-Za-z_]+)\*/g, (m, n) => {
            names.push(n);
            return '(.+)';
        })
        .replace(/:([A-Za-z_]+)/g, (m, n) => {
            names.push(n);
            return '([^/]+)';
        });
    return { re: new RegExp('^' + src + '/?$'), names };
}

// Fixed one-second windows per key, like the providers' documented
// "N requests per second" limits.
class RateLimiter {
    constructor() { this.windows = new Map(); }

    // -> { ok, limit, remaining, reset_ms }
    take(key, limit, windowMs) {
        const now = Date.now();
        const start = now - (now % windowMs);
        let w = this.windows.get(key);
        if (!w || w.start !== start) {
            w = { start, count: 0 };
            this.windows.set(key, w);
        }
        const resetMs = start + windowMs - now;
        if (w.count >= limit) {
            return { ok: false, limit, remaining: 0, reset_ms: resetMs };
        }
        w.count++;
        return { ok: true, limit, remaining: limit - w.count,
                 reset_ms: resetMs };
    }

    clear() { this.windows.clear(); }
}

// A fault rule: { service, method, path (regex), match (substring of the
// body), status, body, headers, retry_after, latency_ms, drop, times,
// skip }.  The first matching rule with times left applies.
class Faults {
    constructor() { this.rules = []; this.nextId = 1; }

    add(rule) {
        const r = Object.assign({}, rule);
        if (r.path !== undefined) r.pathRe = new RegExp(r.path);
        r.id = this.nextId++;
        r.hits = 0;
        r.skipped = 0;
        if (r.times === undefined) r.times = -1;
        this.rules.push(r);
        return r.id;
    }

    match(service, method, path, bodyText) {
        for (const r of this.rules) {
            if (r.times === 0) continue;
            if (r.service && r.service !== service) continue;
            if (r.method && r.method.toUpperCase() !== method) continue;
            if (r.pathRe && !r.pathRe.test(path)) continue;
            if (r.match && !bodyText.includes(r.match)) continue;
            if (r.skip && r.skipped < r.skip) { r.skipped++; continue; }
            if (r.times > 0) r.times--;
            r.hits++;
            return r;
        }
        return null;
    }

    list() {
        return this.rules.map((r) => {
            const o = Object.assign({}, r);
            delete o.pathRe;
            return o;
        });
    }

    clear(service) {
        this.rules = service
            ? this.rules.filter((r) => r.service !== service) : [];
    }
}

class RequestLog {
    constructor(max) { this.max = max; this.items = []; this.seq = 0; }

    // Dropping the oldest in chunks of a tenth keeps the cost of a full
    // log constant per request instead of shifting the array each time.
    add(entry) {
        entry.seq = ++this.seq;
        if (this.max === 0) return entry;
        this.items.push(entry);
        const slack = Math.max(1, Math.floor(this.max / 10));
        if (this.items.length > this.max + slack) {
            this.items.splice(0, this.items.length - this.max);
        }
        return entry;
    }

    query(q) {
        const since = Number(q.get('since') || 0);
        const service = q.get('service');
        const method = q.get('method');
        const path = q.get('path') ? new RegExp(q.get('path')) : null;
        const limit = Number(q.get('limit') || 0);
        let out = this.items.filter((e) => e.seq > since
            && (!service || e.service === service)
            && (!method || e.method === method)
            && (!path || path.test(e.path)));
        if (limit > 0) out = out.slice(0, limit);
        return out;
    }

    clear() { this.items = []; }
}

function readBody(req) {
    return new Promise((resolve, reject) => {
        const chunks = [];
        let size = 0;
        req.on('data', (c) => {
            size += c.length;
            if (size > MAX_BODY) {
                reject(new HttpError(413, 'too large'));
                req.destroy();
                return;
            }
            chunks.push(c);
        });
        req.on('end', () => resolve(Buffer.concat(chunks)));
        req.on('error', reject);
    });
}

function delay(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

// Tokens and keys are shown only by their first characters.
function maskSecret(v) {
    if (v === undefined) return undefined;
    const s = String(v);
    const sp = s.indexOf(' ');
    const scheme = sp > 0 ? s.slice(0, sp + 1) : '';
    const rest = sp > 0 ? s.slice(sp + 1) : s;
    return scheme + rest.slice(0, 4) + '…';
}

const SECRET_HEADERS = new Set(['authorization', 'x-api-key', 'apikey',
    'x-auth-token', 'x-guid']);

// Credentials some APIs take as query parameters (Yotpo's legacy api_key).
const SECRET_PARAMS = new Set(['api_key', 'apikey', 'access_token',
    'client_secret']);

// The query string as sent unless it carries one of those.
function maskQuery(url) {
    const q = new URLSearchParams(url.search);
    const secret = [...q.keys()].filter((k) =>
        SECRET_PARAMS.has(k.toLowerCase()));
    if (!secret.length) return url.search;
    for (const k of secret) q.set(k, maskSecret(q.get(k)));
    return '?' + q.toString();
}

class Context {
    constructor(sb, svc, req, res, url, body) {
        this.sb = sb;
        this.svc = svc;
        this.req = req;
        this.res = res;
        this.method = req.method;
        this.path = url.pathname.slice(svc ? svc.prefix.length : 0) || '/';
        this.query = url.searchParams;
        this.headers = req.headers;
        this.body = body;
        this.params = {};
        this.principal = null;
        this.replyHeaders = {};
    }

    text() { return this.body.toString('utf8'); }

    // The body as JSON, or the provider's 400.
    json() {
        if (this._json !== undefined) return this._json;
        try {
            this._json = JSON.parse(this.text());
        } catch (e) {
            throw this.svc.error(400, 'malformed JSON: ' + e.message,
                                 'JSON_PARSER_ERROR', this);
        }
        return this._json;
    }

    header(name, value) { this.replyHeaders[name] = value; }
}

class Sandbox {
    constructor(opts) {
        this.opts = opts || {};
        this.services = [];
        this.faults = new Faults();
        // logMax 0 keeps no entries (only the count, seq); logBodyMax caps
        // each logged body.  Both exist for benchmarks; tests read the log.
        this.log = new RequestLog(this.opts.logMax ?? 200000);
        this.logBodyMax = this.opts.logBodyMax ?? LOG_BODY_MAX;
        this.limiter = new RateLimiter();
        this.started = Date.now();
        this.idSeq = 0;
    }

    // A service module: { name, prefix, create(sandbox) -> service }.
    add(mod) {
        const svc = mod.create(this);
        svc.name = svc.name || mod.name;
        svc.prefix = svc.prefix || '/' + svc.name;
        svc.routes = (svc.routes || []).map(([method, pattern, fn]) =>
            Object.assign({ method, fn }, compilePattern(pattern)));
        if (!svc.error) {
            svc.error = (status, message) =>
                new HttpError(status, { error: { message } });
        }
        this.services.push(svc);
        return svc;
    }

    service(name) { return this.services.find((s) => s.name === name); }

    // Unique ids for emulated records, per prefix.
    newId(prefix, width) {
        const n = String(++this.idSeq);
        return prefix + n.padStart(width || 12, '0');
    }

    reset(name) {
        for (const s of this.services) {
            if (!name || s.name === name) s.reset();
        }
        this.faults.clear(name);
        this.limiter.clear();
        if (!name) this.log.clear();
    }

    listen(host, port) {
        this.server = http.createServer({ keepAliveTimeout: 60000 },
            (req, res) => { this.handle(req, res); });
        this.server.keepAliveTimeout = 60000;
        this.server.headersTimeout = 65000;
        return new Promise((resolve) => {
            this.server.listen(port, host, () =>
                resolve(this.server.address().port));
        });
    }

    send(res, status, body, headers) {
        let payload = '';
        const h = Object.assign({}, headers);
        if (body !== undefined && body !== null && status !== 204) {
            if (typeof body === 'string' || Buffer.isBuffer(body)) {
                payload = body;
                if (!h['Content-Type']) h['Content-Type'] = 'text/plain';
            } else {
                payload = JSON.stringify(body);
                if (!h['Content-Type']) {
                    h['Content-Type'] = 'application/json';
                }
            }
        }
        h['Content-Length'] = Buffer.byteLength(payload);
        res.writeHead(status, h);
        res.end(payload);
        return payload;
    }

    async handle(req, res) {
        // t and latency_ms both from the request's arrival, before its
        // body is read: [t, t + latency_ms] is the time it was open
        const t0 = process.hrtime.bigint();
        const wall0 = Date.now();
        const url = new URL(req.url, 'http://sandbox');
        let body;
        try {
            body = await readBody(req);
        } catch (e) {
            this.send(res, e.status || 400, String(e.message));
            return;
        }
        if (url.pathname.startsWith('/_sandbox')) {
            this.control(req, res, url, body);
            return;
        }
        const svc = this.services.find((s) =>
            url.pathname === s.prefix
            || url.pathname.startsWith(s.prefix + '/'));
        const ctx = new Context(this, svc, req, res, url, body);
        const bodyText = body.length ? body.toString('utf8') : '';
        const entry = {
            t: wall0,
            service: svc ? svc.name : null,
            method: req.method,
            path: ctx.path,
            query: maskQuery(url),
            headers: {},
            body: bodyText.length > this.logBodyMax
                ? bodyText.slice(0, this.logBodyMax) : bodyText,
        };
        for (const [k, v] of Object.entries(req.headers)) {
            entry.headers[k] = SECRET_HEADERS.has(k) ? maskSecret(v) : v;
        }
        entry.corr = req.headers['x-correlation-id'];
        this.log.add(entry);

        let status;
        let out;
        let headers = {};
        try {
            if (!svc) throw new HttpError(404, { error: 'no such service' });
            const fault = this.faults.match(svc.name, req.method, ctx.path,
                                             bodyText);
            if (fault) {
                entry.fault = fault.id;
                if (fault.latency_ms) await delay(fault.latency_ms);
                if (fault.drop) {
                    entry.status = 0;
                    req.socket.destroy();
                    return;
                }
                if (fault.status) {
                    const fh = Object.assign({}, fault.headers);
                    if (fault.retry_after !== undefined) {
                        fh['Retry-After'] = String(fault.retry_after);
                    }
                    const fb = fault.body !== undefined ? fault.body
                        : svc.faultBody ? svc.faultBody(fault.status, ctx)
                        : { error: { message: 'injected fault' } };
                    throw new HttpError(fault.status, fb, fh);
                }
            }
            if (svc.limit) svc.limit(ctx);
            if (svc.auth) ctx.principal = svc.auth(ctx);
            const route = this.route(svc, ctx);
            const r = await route.fn(ctx);
            status = r.status;
            out = r.body;
            headers = Object.assign(ctx.replyHeaders, r.headers);
        } catch (e) {
            if (!(e instanceof HttpError)) {
                e = new HttpError(500, { error: { message: String(e.stack) } });
            }
            status = e.status;
            out = e.body;
            headers = Object.assign(ctx.replyHeaders, e.headers);
        }
        if (svc && svc.decorate) svc.decorate(ctx, headers);
        const sent = this.send(res, status, out, headers);
        entry.status = status;
        entry.response = typeof sent === 'string' && sent.length > 4096
            ? sent.slice(0, 4096) : String(sent);
        entry.latency_ms = Number(process.hrtime.bigint() - t0) / 1e6;
    }

    route(svc, ctx) {
        let allowed = false;
        for (const r of svc.routes) {
            const m = r.re.exec(ctx.path);
            if (!m) continue;
            if (r.method !== ctx.method) { allowed = true; continue; }
            r.names.forEach((n, i) => {
                ctx.params[n] = decodeURIComponent(m[i + 1]);
            });
            return r;
        }
        // ctx last: a provider whose error format depends on the API
        // version in the path (BigCommerce v2/v3) can pick it.
        throw allowed
            ? svc.error(405, 'method not allowed', 'METHOD_NOT_ALLOWED', ctx)
            : svc.error(404, 'The requested resource does not exist',
                        'NOT_FOUND', ctx);
    }

    // /_sandbox control API, see docs/sandbox.md.
    control(req, res, url, body) {
        const parts = url.pathname.split('/').filter(Boolean).slice(1);
        const q = url.searchParams;
        let input = {};
        try {
            if (body.length) input = JSON.parse(body.toString('utf8'));
        } catch (e) {
            this.send(res, 400, { error: 'malformed JSON' });
            return;
        }
        const m = req.method;
        const what = parts[0] || '';
        try {
            if (what === 'health' && m === 'GET') {
                this.send(res, 200, { ok: true,
                    services: this.services.map((s) => s.name),
                    requests: this.log.seq });
            } else if (what === 'reset' && m === 'POST') {
                this.reset(q.get('service'));
                this.send(res, 204);
            } else if (what === 'requests' && m === 'GET') {
                this.send(res, 200, { seq: this.log.seq,
                                      requests: this.log.query(q) });
            } else if (what === 'requests' && m === 'DELETE') {
                this.log.clear();
                this.send(res, 204);
            } else if (what === 'faults' && m === 'POST') {
                const rules = Array.isArray(input) ? input : [input];
                const ids = rules.map((r) => this.faults.add(r));
                this.send(res, 201, { ids });
            } else if (what === 'faults' && m === 'GET') {
                this.send(res, 200, { faults: this.faults.list() });
            } else if (what === 'faults' && m === 'DELETE') {
                this.faults.clear(q.get('service'));
                this.send(res, 204);
            } else if (what === 'state' && m === 'GET' && parts[1]) {
                const svc = this.service(parts[1]);
                if (!svc) throw new HttpError(404, { error: 'no service' });
                this.send(res, 200, svc.dump(parts.slice(2), q));
            } else if (what === 'config' && parts[1]) {
                const svc = this.service(parts[1]);
                if (!svc) throw new HttpError(404, { error: 'no service' });
                if (m === 'POST') Object.assign(svc.config, input);
                this.send(res, 200, svc.config);
            } else if (what === 'do' && m === 'POST' && parts[1]) {
                // service actions: expire tokens, seed records, ...
                const svc = this.service(parts[1]);
                if (!svc || !svc.actions || !svc.actions[parts[2]]) {
                    throw new HttpError(404, { error: 'no such action' });
                }
                this.send(res, 200, svc.actions[parts[2]](input, q) || {});
            } else {
                this.send(res, 404, { error: 'no such control endpoint' });
            }
        } catch (e) {
            this.send(res, e.status || 500,
                      e.body || { error: String(e.stack) });
        }
    }
}

// Helpers the service modules share.

function bearer(ctx) {
    const h = ctx.headers.authorization || '';
    const m = /^Bearer\s+(\S+)$/i.exec(h);
    return m ? m[1] : null;
}

function ok(status, body, headers) {
    return { status, body, headers };
}

module.exports = {
    Sandbox, HttpError, RateLimiter, bearer, ok, compilePattern, delay,
};
