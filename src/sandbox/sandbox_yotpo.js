'use strict';

// Yotpo Loyalty & Referrals API (apis.md §14) under /yotpo/api/v2:
// x-guid + x-api-key per merchant (legacy merchant_id + api_key query
// parameters too), a per-merchant rate limit with ratelimit-* headers on
// every response, customers, orders with points per currency unit
// (idempotent per order_id), proportional refunds, point adjustments,
// custom actions and redemptions.  Each merchant has its own state.  See
// docs/sandbox.md, section "Yotpo Loyalty".

const http = require('http');
const crypto = require('crypto');
const { HttpError, ok } = require('./sandbox_core');

const API = '/api/v2';

function defaults() {
    return {
        merchants: [{ guid: 'yotpo_test_guid', api_key: 'yotpo_test_key' }],
        legacy_params: true,       // merchant_id + api_key query params
        rate_limit: 10,            // per second and merchant
        rate_limit_minute: 600,
        // flat {"error":msg,"code"} | nested {"error":{code,message}}
        // | errors {"errors":[...]}: the real shape is UNCONFIRMED
        error_format: 'flat',
        points_per_currency_unit: 1,   // per 100 cents of the total
        // order statuses that earn points; null: every status
        award_statuses: null,
        unknown_refund_status: 404,
        custom_actions: {},            // action_name -> points
        campaigns: [],
        redemption_options: [
            { id: 1, name: '$5 off', amount: 500, cost_text: '500 points',
              discount_type: 'fixed_amount', discount_amount_cents: 500,
              code_prefix: 'YL5' },
        ],
        // tiers by points earned
        vip_tiers: [
            { id: 1, name: 'Silver', points_earned: 0, rank: 1 },
            { id: 2, name: 'Gold', points_earned: 1000, rank: 2 },
        ],
    };
}

function errorBody(format, code, message) {
    if (format === 'nested') return { error: { code, message } };
    if (format === 'errors') return { errors: [{ code, message }] };
    return { error: message, code };
}

function codeFor(status) {
    return (http.STATUS_CODES[status] || 'error').toLowerCase()
        .replace(/[^a-z0-9]+/g, '_');
}

function isoNow() { return new Date().toISOString(); }

function create(sb) {
    const svc = {
        name: 'yotpo',
        prefix: '/yotpo',
        config: defaults(),
    };
    let merchants;     // guid -> state
    let seq;

    svc.reset = () => { merchants = new Map(); seq = 0; };
    svc.reset();

    function store(guid) {
        let m = merchants.get(guid);
        if (!m) {
            // byId/byEmail keep lookups O(1) with many customers
            m = { customers: [], byId: new Map(), byEmail: new Map(),
                  orders: new Map(), redemptions: [], busy: new Map() };
            merchants.set(guid, m);
        }
        return m;
    }

    svc.error = (status, message, code) => new HttpError(status,
        errorBody(svc.config.error_format,
                  (code || codeFor(status)).toLowerCase(), message));

    svc.faultBody = (status) => errorBody(svc.config.error_format,
        codeFor(status), http.STATUS_CODES[status] || 'error');

    // --- auth and limits ------------------------------------------------

    function credentials(ctx) {
        const guid = ctx.headers['x-guid'];
        if (guid || !svc.config.legacy_params) {
            return { guid, key: ctx.headers['x-api-key'] };
        }
        return { guid: ctx.query.get('merchant_id'),
                 key: ctx.query.get('api_key') };
    }

    svc.limit = (ctx) => {
        const c = svc.config;
        const guid = credentials(ctx).guid || '-';
        const sec = sb.limiter.take('yotpo:s:' + guid, c.rate_limit, 1000);
        const min = sec.ok
            ? sb.limiter.take('yotpo:m:' + guid, c.rate_limit_minute, 60000)
            : null;
        ctx.yotpoRate = { sec, min };
        if (!sec.ok || !min.ok) {
            throw svc.error(429, 'Rate limit exceeded', 'too_many_requests');
        }
    };

    // every response, 429s and injected faults included
    svc.decorate = (ctx, headers) => {
        const c = svc.config;
        const r = ctx.yotpoRate || {};
        const sec = r.sec || { limit: c.rate_limit,
                               remaining: c.rate_limit, reset_ms: 1000 };
        headers['ratelimit-limit'] = String(sec.limit);
        headers['ratelimit-remaining'] = String(sec.remaining);
        headers['ratelimit-reset'] =
            String(Math.max(1, Math.ceil(sec.reset_ms / 1000)));
        headers['x-ratelimit-limit-minute'] = String(c.rate_limit_minute);
        headers['x-ratelimit-remaining-minute'] = String(r.min
            ? r.min.remaining : c.rate_limit_minute);
    };

    svc.auth = (ctx) => {
        const { guid, key } = credentials(ctx);
        const m = (svc.config.merchants || []).find((x) =>
            x.guid === guid && x.api_key === key);
        if (!guid || !m) {
            throw svc.error(401, 'Invalid GUID or API key', 'unauthorized');
        }
        return m;
    };

    function objectBody(ctx) {
        const b = ctx.json();
        if (!b || typeof b !== 'object' || Array.isArray(b)) {
            throw svc.error(400, 'the body must be a JSON object',
                            'bad_request');
        }
        return b;
    }

    // --- customers ------------------------------------------------------

    function tierOf(c) {
        let best = null;
        for (const t of svc.config.vip_tiers || []) {
            if (c.points_earned >= t.points_earned
                && (!best || t.rank > best.rank)) best = t;
        }
        return best;
    }

    function nextTierOf(c) {
        const cur = tierOf(c);
        return (svc.config.vip_tiers || [])
            .filter((t) => !cur || t.rank > cur.rank)
            .filter((t) => t.points_earned > c.points_earned)
            .sort((a, b) => a.rank - b.rank)[0] || null;
    }

    function findCustomer(m, id, email) {
        if (id !== undefined && id !== null && id !== '') {
            const byId = m.byId.get(String(id));
            if (byId) return byId;
        }
        return email ? m.byEmail.get(email) || null : null;
    }

    // Sets the id or e-mail and keeps the lookup maps right.
    function setKey(m, c, field, value) {
        const map = field === 'email' ? m.byEmail : m.byId;
        if (c[field] !== null && map.get(c[field]) === c) map.delete(c[field]);
        c[field] = value === undefined || value === null || value === ''
            ? null : String(value);
        if (c[field] !== null && !map.has(c[field])) map.set(c[field], c);
    }

    function newCustomer(m, input) {
        const now = isoNow();
        const id = input.id !== undefined ? input.id : input.thirty_party_id;
        const c = {
            thirty_party_id: null,
            email: null,
            first_name: input.first_name || null,
            last_name: input.last_name || null,
            points_balance: Number(input.points_balance || 0),
            points_earned: Number(input.points_earned
                                  || input.points_balance || 0),
            total_spend_cents: 0,
            total_purchases: 0,
            perks_redeemed: 0,
            last_purchase_at: null,
            points_expire_at: null,
            last_seen_at: now,
            referral_code: { code: crypto.randomBytes(4).toString('hex') },
            history: [],
            created_at: now,
        };
        m.customers.push(c);
        setKey(m, c, 'thirty_party_id', id);
        setKey(m, c, 'email', input.email);
        return c;
    }

    function addHistory(c, action, points) {
        const now = isoNow();
        c.history.push({ created_at: now, date: now.slice(0, 10), action,
                         points, status: 'Approved' });
    }

    function customerView(c, q) {
        const o = Object.assign({}, c);
        delete o.history;
        delete o.created_at;
        if (!q || q.get('with_referral_code') !== 'true') {
            delete o.referral_code;
        }
        if (q && q.get('with_history') === 'true') {
            o.history_items = c.history.slice().reverse();
        }
        const tier = tierOf(c);
        const next = nextTierOf(c);
        o.vip_tier_name = tier ? tier.name : null;
        o.vip_tier_ends_at = null;
        o.vip_tier_upgrade_requirements = next
            ? { points_needed: next.points_earned - c.points_earned } : null;
        return o;
    }

    function customerOr404(m, id, email) {
        const c = findCustomer(m, id, email);
        if (!c) throw svc.error(404, 'Customer not found', 'not_found');
        return c;
    }

    function getCustomer(ctx) {
        const q = ctx.query;
        if (!q.get('customer_email') && !q.get('customer_id')) {
            throw svc.error(400, 'customer_email or customer_id is required',
                            'bad_request');
        }
        const m = store(ctx.principal.guid);
        const c = customerOr404(m, q.get('customer_id'),
                                q.get('customer_email'));
        return ok(200, customerView(c, q));
    }

    function upsertCustomer(ctx) {
        const b = objectBody(ctx);
        if (!b.id && !b.email) {
            throw svc.error(400, 'id or email is required', 'bad_request');
        }
        const m = store(ctx.principal.guid);
        let c = findCustomer(m, b.id, b.email);
        if (!c) {
            c = newCustomer(m, { id: b.id, email: b.email });
        }
        for (const f of ['first_name', 'last_name']) {
            if (b[f] !== undefined) c[f] = b[f];
        }
        if (b.email !== undefined) setKey(m, c, 'email', b.email);
        if (b.id !== undefined && b.id !== null) {
            setKey(m, c, 'thirty_party_id', b.id);
        }
        c.last_seen_at = isoNow();
        return ok(200, customerView(c));
    }

    // --- points ---------------------------------------------------------

    // Cents as integers or digit strings ("15000"); else the 400.
    function cents(v, name, required) {
        if (v === undefined || v === null || v === '') {
            if (required) {
                throw svc.error(400, name + ' is required', 'bad_request');
            }
            return 0;
        }
        if (Number.isInteger(v)) return v;
        if (typeof v === 'string' && /^-?[0-9]+$/.test(v)) return Number(v);
        throw svc.error(400, name + ' must be an integer number of cents',
                        'bad_request');
    }

    function pointsFor(totalCents) {
        return Math.floor(totalCents / 100
                          * svc.config.points_per_currency_unit);
    }

    function checkBusy(m, c) {
        const key = c.thirty_party_id || c.email;
        const left = m.busy.get(key);
        if (!left) return;
        if (left === 1) m.busy.delete(key); else m.busy.set(key, left - 1);
        throw svc.error(423, 'The customer record is busy, try again',
                        'locked');
    }

    function earns(status) {
        const list = svc.config.award_statuses;
        return !list || !status || list.includes(status);
    }

    function createOrder(ctx) {
        const b = objectBody(ctx);
        if (b.order_id === undefined || b.order_id === null
            || b.order_id === '') {
            throw svc.error(400, 'order_id is required', 'bad_request');
        }
        if (!b.customer_email && !b.customer_id) {
            throw svc.error(400, 'customer_email or customer_id is required',
                            'bad_request');
        }
        const total = cents(b.total_amount_cents, 'total_amount_cents', true);
        for (const f of ['discount_amount_cents', 'shipping_amount_cents',
                         'tax_amount_cents', 'total_refunded_cents']) {
            cents(b[f], f, false);
        }
        const m = store(ctx.principal.guid);
        const orderId = String(b.order_id);
        const seen = m.orders.get(orderId);
        // a repeat is accepted but changes nothing (no double points)
        if (seen) return ok(200, orderView(seen));
        const c = findCustomer(m, b.customer_id, b.customer_email)
            || newCustomer(m, { id: b.customer_id, email: b.customer_email });
        const pts = earns(b.status) ? pointsFor(total) : 0;
        const order = {
            order_id: orderId, customer_id: c.thirty_party_id,
            customer_email: c.email, total_amount_cents: total,
            currency_code: b.currency_code || null, status: b.status || null,
            points_awarded: pts, refunded_cents: 0, points_reversed: 0,
            refunds: [], created_at: b.created_at || isoNow(),
            items: b.items || [],
        };
        m.orders.set(orderId, order);
        c.total_spend_cents += total;
        c.total_purchases += 1;
        c.last_purchase_at = order.created_at;
        if (pts) {
            c.points_balance += pts;
            c.points_earned += pts;
            addHistory(c, 'Made a purchase', pts);
        }
        return ok(200, orderView(order));
    }

    function orderView(o) {
        const v = Object.assign({}, o);
        delete v.items;
        return v;
    }

    // Refunds add up to at most the order total; points are reversed in
    // proportion to the refunded share (the balance may go negative).
    function createRefund(ctx) {
        const b = objectBody(ctx);
        const m = store(ctx.principal.guid);
        const order = m.orders.get(String(b.order_id));
        if (!order) {
            throw svc.error(svc.config.unknown_refund_status,
                            'Order not found', 'not_found');
        }
        const asked = cents(b.total_amount_cents, 'total_amount_cents', true);
        if (asked < 0) {
            throw svc.error(400, 'total_amount_cents must not be negative',
                            'bad_request');
        }
        const amount = Math.min(asked, order.total_amount_cents
                                - order.refunded_cents);
        order.refunded_cents += amount;
        const target = order.total_amount_cents
            ? Math.round(order.points_awarded * order.refunded_cents
                         / order.total_amount_cents) : 0;
        const reverse = target - order.points_reversed;
        order.points_reversed = target;
        order.refunds.push({ amount_cents: amount, asked_cents: asked,
                             points_reversed: reverse, at: isoNow() });
        const c = findCustomer(m, order.customer_id, order.customer_email);
        c.total_spend_cents -= amount;
        if (reverse) {
            c.points_balance -= reverse;
            c.points_earned -= reverse;
            addHistory(c, 'Refund of order ' + order.order_id, -reverse);
        }
        return ok(200, orderView(order));
    }

    function bodyCustomer(m, b) {
        const id = b.customer_external_id !== undefined
            ? b.customer_external_id : b.customer_id;
        if (!b.customer_email && (id === undefined || id === null)) {
            throw svc.error(400, 'customer_email or customer_external_id'
                            + ' is required', 'bad_request');
        }
        return customerOr404(m, id, b.customer_email);
    }

    function adjustPoints(ctx) {
        const b = objectBody(ctx);
        const m = store(ctx.principal.guid);
        const c = bodyCustomer(m, b);
        const amount = b.point_adjustment_amount;
        if (!Number.isInteger(amount)) {
            throw svc.error(400, 'point_adjustment_amount must be an integer',
                            'bad_request');
        }
        checkBusy(m, c);
        if (c.points_balance + amount < 0) {
            throw svc.error(422, 'Insufficient points balance',
                            'insufficient_points');
        }
        c.points_balance += amount;
        if (b.apply_adjustment_to_points_earned) c.points_earned += amount;
        addHistory(c, b.history_title || 'Points adjustment', amount);
        return ok(200, customerView(c));
    }

    function customAction(ctx) {
        const b = objectBody(ctx);
        if (!b.action_name) {
            throw svc.error(400, 'action_name is required', 'bad_request');
        }
        if (!b.customer_email && !b.customer_id) {
            throw svc.error(400, 'customer_email is required', 'bad_request');
        }
        const m = store(ctx.principal.guid);
        const c = findCustomer(m, b.customer_id, b.customer_email)
            || newCustomer(m, { id: b.customer_id, email: b.customer_email });
        const rule = (svc.config.custom_actions || {})[b.action_name];
        const pts = Number(b.reward_points !== undefined
                           ? b.reward_points : rule || 0);
        if (pts) {
            c.points_balance += pts;
            c.points_earned += pts;
            addHistory(c, b.history_title || b.action_name, pts);
        }
        return ok(200, { action_name: b.action_name, points_awarded: pts,
                         customer_email: c.email });
    }

    function redeem(ctx) {
        const b = objectBody(ctx);
        const m = store(ctx.principal.guid);
        const c = bodyCustomer(m, b);
        const opt = (svc.config.redemption_options || []).find((o) =>
            String(o.id) === String(b.redemption_option_id));
        if (!opt) {
            throw svc.error(404, 'Redemption option not found', 'not_found');
        }
        checkBusy(m, c);
        if (c.points_balance < opt.amount) {
            throw svc.error(422, 'Insufficient points balance',
                            'insufficient_points');
        }
        c.points_balance -= opt.amount;
        c.perks_redeemed += 1;
        addHistory(c, 'Redeemed ' + opt.name, -opt.amount);
        const now = isoNow();
        const r = {
            id: ++seq,
            reward_text: (opt.code_prefix || 'YL') + '-'
                + crypto.randomBytes(4).toString('hex').toUpperCase(),
            approved: true, approved_at: now, is_admin: false,
            is_pos: false, at_checkout: false, created_at: now,
            customer_email: c.email, customer_external_id: c.thirty_party_id,
            redemption_option: optionView(opt),
        };
        m.redemptions.push(r);
        return ok(200, r);
    }

    function optionView(o) {
        const v = Object.assign({}, o);
        delete v.code_prefix;
        return v;
    }

    svc.routes = [
        ['GET', API + '/customers', getCustomer],
        ['POST', API + '/customers', upsertCustomer],
        ['POST', API + '/orders', createOrder],
        ['POST', API + '/refunds', createRefund],
        ['POST', API + '/points/adjust', adjustPoints],
        ['POST', API + '/actions', customAction],
        ['POST', API + '/redemptions', redeem],
        ['GET', API + '/redemption_options', () => ok(200,
            (svc.config.redemption_options || []).map(optionView))],
        ['GET', API + '/campaigns', () => ok(200, svc.config.campaigns)],
    ];

    // --- control API ----------------------------------------------------

    function merchantOf(input) {
        return input.merchant || (svc.config.merchants[0] || {}).guid;
    }

    svc.actions = {
        // {"merchant":GUID?, "customers":[{id,email,points_balance,..}]}
        customer(input) {
            const m = store(merchantOf(input));
            const list = input.customers || [input];
            return { customers: list.map((x) => {
                if (findCustomer(m, x.id, x.email)) {
                    throw new HttpError(409, { error: 'customer exists' });
                }
                return customerView(newCustomer(m, x));
            }) };
        },
        // the next TIMES adjustments/redemptions for a customer get 423
        busy(input) {
            const m = store(merchantOf(input));
            const c = findCustomer(m, input.customer_id,
                                   input.customer_email);
            if (!c) throw new HttpError(404, { error: 'no such customer' });
            m.busy.set(c.thirty_party_id || c.email, input.times || 1);
            return { busy: input.times || 1 };
        },
        defaults() {
            for (const k of Object.keys(svc.config)) delete svc.config[k];
            Object.assign(svc.config, defaults());
            return svc.config;
        },
    };

    function customerState(c) {
        const q = new URLSearchParams('with_history=true'
                                      + '&with_referral_code=true');
        return customerView(c, q);
    }

    // /_sandbox/state/yotpo[?merchant=GUID]          everything
    // /_sandbox/state/yotpo/customer?email=|id=      one customer
    // /_sandbox/state/yotpo/orders/ORDER_ID          one order
    svc.dump = (parts, q) => {
        const guid = q.get('merchant') || merchantOf({});
        const m = store(guid);
        if (parts[0] === 'customer') {
            const c = findCustomer(m, q.get('id'), q.get('email'));
            return c ? customerState(c) : {};
        }
        if (parts[0] === 'orders' && parts[1]) {
            return m.orders.get(parts[1]) || {};
        }
        return {
            merchant: guid,
            customers: m.customers.map(customerState),
            orders: [...m.orders.values()],
            redemptions: m.redemptions,
        };
    };

    return svc;
}

module.exports = { name: 'yotpo', create };
