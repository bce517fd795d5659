'use strict';

// Smile.io REST API (apis.md §13) under /smile/v1: Bearer tokens with
// optional scopes, 10 requests/s per token, bodies wrapped in a singular
// root key, customers with VIP tiers by points, the points ledger and
// activities evaluated against configured earning rules.  See
// docs/sandbox.md, section "Smile.io".

const http = require('http');
const { HttpError, bearer, ok } = require('./sandbox_core');

const API = '/v1';
const FIRST_ID = 304169228;

function defaults() {
    return {
        // strings (every scope) or { token, scopes: [...] }
        tokens: ['smile_test_token'],
        rate_limit: 10,
        rate_window_ms: 1000,
        // nested {"error":{code,message}} | flat {code,message}
        // | errors {"errors":[{code,message}]}: the real shape is
        // UNCONFIRMED
        error_format: 'nested',
        created_status: 201,             // UNCONFIRMED
        duplicate_activity_status: 422,  // UNCONFIRMED
        // activity token -> points, or { points, points_per_unit,
        // property, description }
        earning_rules: {},
        // Smile evaluates activities asynchronously; 0 applies at once
        activity_delay_ms: 0,
        // tiers by points earned (or the balance, vip_metric)
        vip_metric: 'points_earned',
        vip_tiers: [
            { id: 1, name: 'Bronze', milestone: 0 },
            { id: 2, name: 'Silver', milestone: 500 },
            { id: 3, name: 'Gold', milestone: 1000 },
        ],
    };
}

function errorBody(format, code, message) {
    if (format === 'flat') return { code, message };
    if (format === 'errors') return { errors: [{ code, message }] };
    return { error: { code, message } };
}

function codeFor(status) {
    return (http.STATUS_CODES[status] || 'error').toLowerCase()
        .replace(/[^a-z0-9]+/g, '_');
}

function isoNow() { return new Date().toISOString(); }

function isJsonType(ctx) {
    return /^application\/json\b/i.test(ctx.headers['content-type'] || '');
}

function create(sb) {
    const svc = {
        name: 'smile',
        prefix: '/smile',
        config: defaults(),
    };
    let st;

    svc.reset = () => {
        st = {
            nextId: FIRST_ID,
            customers: new Map(),       // id -> customer
            byEmail: new Map(),         // e-mail -> customer
            transactions: [],           // oldest first
            activities: new Map(),      // id -> activity
            distinct: new Map(),        // token \0 distinct_id -> id
            tierChanges: [],
        };
    };
    svc.reset();

    const nextId = () => st.nextId++;

    svc.error = (status, message, code) => new HttpError(status,
        errorBody(svc.config.error_format,
                  (code || codeFor(status)).toLowerCase(), message));

    svc.faultBody = (status) => errorBody(svc.config.error_format,
        codeFor(status), http.STATUS_CODES[status] || 'error');

    svc.limit = (ctx) => {
        const key = 'smile:' + (bearer(ctx) || '-');
        const c = svc.config;
        if (!sb.limiter.take(key, c.rate_limit, c.rate_window_ms).ok) {
            throw svc.error(429, 'Too many requests', 'too_many_requests');
        }
    };

    function tokenEntry(token) {
        for (const t of svc.config.tokens || []) {
            if (t === token) return { token, scopes: null };
            if (t && t.token === token) return t;
        }
        return null;
    }

    svc.auth = (ctx) => {
        const entry = tokenEntry(bearer(ctx));
        if (!entry) {
            throw svc.error(401, 'Invalid or missing access token',
                            'unauthorized');
        }
        // documented: a missing Content-Type is a 400
        if (ctx.body.length && !isJsonType(ctx)) {
            throw svc.error(400, 'Content-Type must be application/json',
                            'invalid_content_type');
        }
        return entry;
    };

    // A route that needs SCOPE when the token lists its scopes.
    function scoped(scope, fn) {
        return (ctx) => {
            const scopes = ctx.principal.scopes;
            if (scopes && !scopes.includes(scope)) {
                throw svc.error(403, 'Token lacks scope ' + scope,
                                'insufficient_scope');
            }
            return fn(ctx);
        };
    }

    // --- customers and tiers --------------------------------------------

    function tierFor(c) {
        const metric = svc.config.vip_metric === 'points_balance'
            ? c.points_balance : c.points_earned;
        let best = null;
        for (const t of svc.config.vip_tiers || []) {
            if (metric >= t.milestone
                && (!best || t.milestone > best.milestone)) best = t;
        }
        return best;
    }

    function nextTier(c) {
        const cur = tierFor(c);
        const above = (svc.config.vip_tiers || [])
            .filter((t) => t.milestone > (cur ? cur.milestone : -1))
            .sort((a, b) => a.milestone - b.milestone);
        return above[0] || null;
    }

    function updateTier(c) {
        const t = tierFor(c);
        const id = t ? t.id : null;
        if (id === c.vip_tier_id) return;
        st.tierChanges.push({
            id: nextId(), customer_id: c.id,
            previous_vip_tier_id: c.vip_tier_id, vip_tier_id: id,
            created_at: isoNow(),
        });
        c.vip_tier_id = id;
    }

    function newCustomer(input) {
        const now = isoNow();
        const c = {
            id: input.id !== undefined ? Number(input.id) : nextId(),
            first_name: input.first_name || null,
            last_name: input.last_name || null,
            email: input.email || null,
            state: input.state || 'member',
            date_of_birth: input.date_of_birth || null,
            points_balance: Number(input.points_balance || 0),
            points_earned: Number(input.points_earned
                                  || input.points_balance || 0),
            referral_url: null,
            vip_tier_id: null,
            created_at: now,
            updated_at: now,
        };
        c.referral_url = 'https://smile.example/r/' + c.id;
        st.customers.set(c.id, c);
        if (c.email) st.byEmail.set(c.email, c);
        c.vip_tier_id = tierFor(c) ? tierFor(c).id : null;
        return c;
    }

    function tierObject(t) {
        return t ? { id: t.id, name: t.name, milestone: t.milestone } : null;
    }

    // The customer object; vip_status only on include=vip_status...
    function customerView(c, include) {
        const o = Object.assign({}, c);
        delete o.points_earned;
        if (/\bvip_status\b/.test(include || '')) {
            const cur = tierFor(c);
            o.vip_status = {
                vip_tier_id: cur ? cur.id : null,
                vip_tier: tierObject(cur),
                next_vip_tier: tierObject(nextTier(c)),
                progress_value: svc.config.vip_metric === 'points_balance'
                    ? c.points_balance : c.points_earned,
            };
        }
        return o;
    }

    function findCustomer(id) {
        return st.customers.get(Number(id)) || null;
    }

    function findByEmail(email) {
        return st.byEmail.get(email) || null;
    }

    // cursor = base64 of the next offset; limit 1..250, default 50
    function page(list, q) {
        const limit = q.has('limit') ? Number(q.get('limit')) : 50;
        if (!Number.isInteger(limit) || limit < 1 || limit > 250) {
            throw svc.error(400, 'limit must be between 1 and 250',
                            'invalid_parameter');
        }
        const start = q.get('cursor')
            ? Number(Buffer.from(q.get('cursor'), 'base64').toString())
            : 0;
        if (!Number.isInteger(start) || start < 0) {
            throw svc.error(400, 'invalid cursor', 'invalid_parameter');
        }
        const items = list.slice(start, start + limit);
        const enc = (n) => Buffer.from(String(n)).toString('base64');
        return {
            items,
            metadata: {
                next_cursor: start + limit < list.length
                    ? enc(start + limit) : null,
                previous_cursor: start > 0
                    ? enc(Math.max(0, start - limit)) : null,
            },
        };
    }

    function listCustomers(ctx) {
        const q = ctx.query;
        let list;
        if (q.has('email')) {
            const c = findByEmail(q.get('email'));
            list = c ? [c] : [];
        } else {
            list = [...st.customers.values()];
        }
        if (q.has('state')) {
            list = list.filter((c) => c.state === q.get('state'));
        }
        if (q.has('updated_at_min')) {
            const min = Date.parse(q.get('updated_at_min'));
            list = list.filter((c) => Date.parse(c.updated_at) >= min);
        }
        const p = page(list, q);
        return ok(200, {
            customers: p.items.map((c) => customerView(c, q.get('include'))),
            metadata: p.metadata,
        });
    }

    function getCustomer(ctx) {
        const c = findCustomer(ctx.params.id);
        if (!c) throw svc.error(404, 'Customer not found', 'not_found');
        return ok(200, { customer: customerView(c, ctx.query.get('include')) });
    }

    // --- points ---------------------------------------------------------

    // Applies a change or throws the 422; returns the transaction.
    function applyPoints(c, change, description, note) {
        if (!Number.isInteger(change) || change === 0) {
            throw svc.error(422, 'points_change must be a non-zero integer',
                            'invalid_points_change');
        }
        if (c.points_balance + change < 0) {
            throw svc.error(422, 'Points change would make the balance'
                            + ' negative', 'insufficient_points');
        }
        const now = isoNow();
        const t = {
            id: nextId(), customer_id: c.id, points_change: change,
            description: description || null, internal_note: note || null,
            created_at: now, updated_at: now,
        };
        st.transactions.push(t);
        c.points_balance += change;
        if (change > 0) c.points_earned += change;
        c.updated_at = now;
        updateTier(c);
        return t;
    }

    // The singular root key of a request body, or the 400.
    function root(ctx, key) {
        const b = ctx.json();
        if (!b || typeof b[key] !== 'object' || b[key] === null) {
            throw svc.error(400, 'param is missing or the value is empty: '
                            + key, 'bad_request');
        }
        return b[key];
    }

    function createTransaction(ctx) {
        const p = root(ctx, 'points_transaction');
        const c = findCustomer(p.customer_id);
        if (!c) throw svc.error(404, 'Customer not found', 'not_found');
        const t = applyPoints(c, p.points_change, p.description,
                              p.internal_note);
        return ok(svc.config.created_status, { points_transaction: t });
    }

    function listTransactions(ctx) {
        const q = ctx.query;
        let list = st.transactions.slice().reverse();
        if (q.has('customer_id')) {
            const id = Number(q.get('customer_id'));
            list = list.filter((t) => t.customer_id === id);
        }
        if (q.has('updated_at_min')) {
            const min = Date.parse(q.get('updated_at_min'));
            list = list.filter((t) => Date.parse(t.updated_at) >= min);
        }
        const p = page(list, q);
        return ok(200, { points_transactions: p.items,
                         metadata: p.metadata });
    }

    function getTransaction(ctx) {
        const id = Number(ctx.params.id);
        const t = st.transactions.find((x) => x.id === id);
        if (!t) throw svc.error(404, 'Points transaction not found',
                                'not_found');
        return ok(200, { points_transaction: t });
    }

    // --- activities -----------------------------------------------------

    function pointsForRule(rule, props) {
        if (typeof rule === 'number') return rule;
        let pts = Number(rule.points || 0);
        if (rule.points_per_unit && rule.property) {
            pts += Math.floor(Number(props[rule.property] || 0)
                              * rule.points_per_unit);
        }
        return pts;
    }

    function evaluate(activity, c) {
        const rule = (svc.config.earning_rules || {})[activity.token];
        if (rule === undefined) return;
        const pts = pointsForRule(rule, activity.properties || {});
        if (pts <= 0) return;
        const desc = (rule && rule.description)
            || 'Earned for ' + activity.token;
        const t = applyPoints(c, pts, desc, 'activity ' + activity.id);
        activity.points_transaction_id = t.id;
    }

    function activityCustomer(a) {
        if (a.customer_id !== undefined && a.customer_id !== null) {
            return findCustomer(a.customer_id);
        }
        if (a.customer_email) return findByEmail(a.customer_email);
        throw svc.error(422, 'customer_id or customer_email is required',
                        'invalid_activity');
    }

    function createActivity(ctx) {
        const a = root(ctx, 'activity');
        if (!a.token) {
            throw svc.error(422, 'token is required', 'invalid_activity');
        }
        const c = activityCustomer(a);
        if (!c) throw svc.error(404, 'Customer not found', 'not_found');
        const dkey = a.distinct_id !== undefined && a.distinct_id !== null
            ? a.token + '\0' + a.distinct_id : null;
        if (dkey && st.distinct.has(dkey)) {
            throw svc.error(svc.config.duplicate_activity_status,
                            'An activity with this token and distinct_id'
                            + ' already exists', 'duplicate_activity');
        }
        const now = isoNow();
        const activity = {
            id: nextId(), token: a.token, customer_id: c.id,
            distinct_id: a.distinct_id === undefined ? null
                : String(a.distinct_id),
            created_on_origin_at: a.created_on_origin_at || now,
            properties: a.properties || {},
            created_at: now, updated_at: now,
        };
        st.activities.set(activity.id, activity);
        if (dkey) st.distinct.set(dkey, activity.id);
        const delay = svc.config.activity_delay_ms;
        // a rule the balance cannot take is dropped, like a real rejection
        const run = () => { try { evaluate(activity, c); } catch (e) { } };
        if (delay > 0) setTimeout(run, delay); else run();
        const view = Object.assign({}, activity);
        delete view.points_transaction_id;
        return ok(svc.config.created_status, { activity: view });
    }

    function listTierChanges(ctx) {
        const q = ctx.query;
        let list = st.tierChanges.slice().reverse();
        if (q.has('customer_id')) {
            const id = Number(q.get('customer_id'));
            list = list.filter((t) => t.customer_id === id);
        }
        const p = page(list, q);
        return ok(200, { vip_tier_changes: p.items, metadata: p.metadata });
    }

    svc.routes = [
        ['GET', API + '/customers',
         scoped('customer:read', listCustomers)],
        ['GET', API + '/customers/:id',
         scoped('customer:read', getCustomer)],
        ['POST', API + '/points_transactions',
         scoped('points_transaction:write', createTransaction)],
        ['GET', API + '/points_transactions',
         scoped('points_transaction:read', listTransactions)],
        ['GET', API + '/points_transactions/:id',
         scoped('points_transaction:read', getTransaction)],
        ['POST', API + '/activities',
         scoped('activity:write', createActivity)],
        ['GET', API + '/vip_tier_changes',
         scoped('vip_tier_change:read', listTierChanges)],
        ['GET', API + '/vip_tiers', scoped('vip_tier:read', () =>
            ok(200, { vip_tiers: (svc.config.vip_tiers || [])
                .map(tierObject) }))],
    ];

    // --- control API ----------------------------------------------------

    svc.actions = {
        // {"customers":[{email, first_name, points_balance, ...}]} or one
        customer(input) {
            const list = input.customers || [input];
            const out = list.map((c) => {
                if ((c.id !== undefined && findCustomer(c.id))
                    || (c.email && findByEmail(c.email))) {
                    throw new HttpError(409, { error: 'customer exists' });
                }
                return customerView(newCustomer(c), 'vip_status');
            });
            return { customers: out };
        },
        // the configuration back to its defaults (reset keeps it)
        defaults() {
            for (const k of Object.keys(svc.config)) delete svc.config[k];
            Object.assign(svc.config, defaults());
            return svc.config;
        },
    };

    function customerState(c) {
        return Object.assign(customerView(c, 'vip_status'), {
            points_earned: c.points_earned,
            points_transactions: st.transactions
                .filter((t) => t.customer_id === c.id).reverse(),
            activities: [...st.activities.values()]
                .filter((a) => a.customer_id === c.id),
            vip_tier_changes: st.tierChanges
                .filter((t) => t.customer_id === c.id),
        });
    }

    // /_sandbox/state/smile                  everything
    // /_sandbox/state/smile/customers/ID     one customer, its ledger...
    // /_sandbox/state/smile/customer?email=  the same by e-mail
    svc.dump = (parts, q) => {
        if (parts[0] === 'customers' && parts[1]) {
            const c = findCustomer(parts[1]);
            return c ? customerState(c) : {};
        }
        if (parts[0] === 'customer') {
            const c = findByEmail(q.get('email'));
            return c ? customerState(c) : {};
        }
        return {
            customers: [...st.customers.values()].map(customerState),
            points_transactions: st.transactions.length,
            activities: st.activities.size,
            vip_tier_changes: st.tierChanges,
        };
    };

    return svc;
}

module.exports = { name: 'smile', create };
