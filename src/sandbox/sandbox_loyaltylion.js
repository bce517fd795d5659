'use strict';

// LoyaltyLion Admin API v2 (docs/sandbox.md, apis.md §12): customers
// keyed by the merchant's own id, points added and removed, rule
// activities, orders whose points follow their paid, refunded and
// cancelled state, and the points ledger.  Order points are recomputed
// from the whole order on every write, so a repeated PUT never doubles.

const { HttpError, bearer, ok } = require('./sandbox_core');

const MAX_POINTS = 1000000;

function defaultConfig() {
    return {
        api_keys: ['ll_sandbox_key'],       // Bearer program API keys
        legacy: {},                          // token -> secret (Basic)
        rate_per_s: 20,
        retry_after: null,                   // UNCONFIRMED: none by default
        points_per_unit: 1,                  // per 1.00 of total_paid
        rules: { signup: 200, newsletter_signup: 50, birthday: 100,
                 review: 25 },
        tiers: [{ name: 'Bronze', min: 0 }, { name: 'Silver', min: 500 },
                { name: 'Gold', min: 1500 }],
        order_create_status: 201,            // UNCONFIRMED
        order_update_status: 204,            // UNCONFIRMED
        activity_status: 201,                // UNCONFIRMED
    };
}

function llError(status, message, details) {
    const error = { message };
    if (details) error.details = details;
    return new HttpError(status, { error });
}

function isoNow() {
    return new Date().toISOString();
}

function money(v) {
    const n = Number(v);
    return Number.isFinite(n) ? n : 0;
}

function create(sb) {
    const svc = {
        name: 'loyaltylion',
        prefix: '/loyaltylion',
        config: defaultConfig(),
    };

    svc.reset = () => {
        svc.customers = new Map();      // merchant_id -> customer
        svc.byEmail = new Map();        // lower-case email -> Set of ids
        svc.orders = new Map();         // merchant_id -> order
        svc.activities = new Map();     // merchant_id -> activity
        svc.activityLog = [];
        svc.transactions = [];
        svc.seq = { customer: 0, order: 0, transaction: 0, activity: 0 };
    };
    svc.reset();

    svc.error = (status, message) => llError(status, message);
    svc.faultBody = (status) => ({ error: { message: status === 429
        ? 'Too many requests' : 'Injected fault (' + status + ')' } });

    // --- auth and rate --------------------------------------------------

    function basicKey(ctx) {
        const m = /^Basic\s+(\S+)$/i.exec(ctx.headers.authorization || '');
        if (!m) return null;
        const s = Buffer.from(m[1], 'base64').toString('utf8');
        const i = s.indexOf(':');
        return i < 0 ? null : { token: s.slice(0, i), secret: s.slice(i + 1) };
    }

    // The limit is per key: the key is whatever credential came in.
    svc.limit = (ctx) => {
        const who = ctx.headers.authorization || 'anonymous';
        const r = sb.limiter.take('loyaltylion:' + who,
                                  Number(svc.config.rate_per_s), 1000);
        if (r.ok) return;
        const headers = {};
        if (svc.config.retry_after !== null
            && svc.config.retry_after !== undefined) {
            headers['Retry-After'] = String(svc.config.retry_after);
        }
        throw new HttpError(429, { error: { message: 'Too many requests' } },
                            headers);
    };

    svc.auth = (ctx) => {
        const key = bearer(ctx);
        if (key && (svc.config.api_keys || []).includes(key)) {
            return { key: key.slice(0, 4) };
        }
        const legacy = basicKey(ctx);
        const legacyOk = legacy && svc.config.legacy
            && Object.prototype.hasOwnProperty.call(svc.config.legacy,
                                                    legacy.token)
            && svc.config.legacy[legacy.token] === legacy.secret;
        if (legacyOk) return { key: legacy.token.slice(0, 4) };
        throw llError(401, 'Unauthorized: a valid API key is required');
    };

    // --- customers and points -------------------------------------------

    function tierOf(c) {
        const earned = c.points_approved + c.points_spent;
        let tier = null;
        (svc.config.tiers || []).forEach((t, i) => {
            if (earned >= t.min) {
                tier = { id: i + 1, name: t.name, number: i + 1 };
            }
        });
        return tier;
    }

    function customerView(c) {
        const tier = tierOf(c);
        return {
            id: c.id, merchant_id: c.merchant_id, email: c.email,
            points_approved: c.points_approved,
            points_pending: c.points_pending,
            points_spent: c.points_spent,
            enrolled: true, guest: false,
            tier, loyalty_tier_membership: tier ? { tier } : null,
            created_at: c.created_at, updated_at: c.updated_at,
        };
    }

    function indexEmail(c) {
        const key = c.email.toLowerCase();
        if (!svc.byEmail.has(key)) svc.byEmail.set(key, new Set());
        svc.byEmail.get(key).add(c.merchant_id);
    }

    function ensureCustomer(merchantId, email) {
        const mid = String(merchantId);
        let c = svc.customers.get(mid);
        if (!c) {
            c = { id: ++svc.seq.customer, merchant_id: mid, email: null,
                  points_approved: 0, points_pending: 0, points_spent: 0,
                  created_at: isoNow(), updated_at: isoNow() };
            svc.customers.set(mid, c);
        }
        if (email && !c.email) {
            c.email = String(email);
            indexEmail(c);
        }
        return c;
    }

    function customerOr404(mid) {
        const c = svc.customers.get(String(mid));
        if (!c) throw llError(404, 'Customer not found');
        return c;
    }

    // Every balance change goes through here and into the ledger.
    function movePoints(c, points, kind, reason, extra) {
        if (!points) return null;
        if (kind === 'remove') {
            c.points_approved -= points;
            c.points_spent += points;
        } else {
            c.points_approved += points;
        }
        c.updated_at = isoNow();
        const t = Object.assign({
            id: ++svc.seq.transaction, customer_id: c.id,
            merchant_id: c.merchant_id,
            points: kind === 'remove' ? -points : points,
            kind, reason: reason || null, created_at: isoNow(),
        }, extra);
        svc.transactions.push(t);
        return t;
    }

    function pointsInput(ctx, min) {
        const b = ctx.json() || {};
        const p = b.points;
        if (!Number.isInteger(p) || p < min || p > MAX_POINTS) {
            throw llError(400, 'Invalid request', {
                points: ['must be an integer between ' + min + ' and '
                         + MAX_POINTS] });
        }
        return { points: p, reason: b.reason };
    }

    function addPoints(ctx) {
        const c = customerOr404(ctx.params.mid);
        const { points, reason } = pointsInput(ctx, 1);
        movePoints(c, points, 'add', reason);
        return ok(201);
    }

    function removePoints(ctx) {
        const c = customerOr404(ctx.params.mid);
        const { points, reason } = pointsInput(ctx, 1);
        if (points > c.points_approved) {
            throw llError(422, 'Customer does not have enough points', {
                points: ['exceeds the approved balance of '
                         + c.points_approved] });
        }
        movePoints(c, points, 'remove', reason);
        return ok(204);
    }

    // since_id, limit (1..500), cursor: an opaque id to continue after
    function page(ctx, items) {
        const limit = ctx.query.has('limit') ? Number(ctx.query.get('limit'))
            : 100;
        if (!Number.isInteger(limit) || limit < 1 || limit > 500) {
            throw llError(400, 'Invalid request',
                          { limit: ['must be between 1 and 500'] });
        }
        let after = Number(ctx.query.get('since_id') || 0);
        const cursor = ctx.query.get('cursor');
        if (cursor) {
            after = Number(Buffer.from(cursor, 'base64url').toString());
            if (!Number.isFinite(after)) {
                throw llError(400, 'Invalid cursor');
            }
        }
        const rest = items.filter((x) => x.id > after);
        const out = rest.slice(0, limit);
        const next = rest.length > limit
            ? Buffer.from(String(out[out.length - 1].id)).toString('base64url')
            : null;
        return { out, cursor: { prev: cursor || null, next } };
    }

    function listCustomers(ctx) {
        // Map order is creation order, which is id order
        const email = ctx.query.get('email');
        const all = email
            ? [...(svc.byEmail.get(email.toLowerCase()) || [])]
                .map((mid) => svc.customers.get(mid))
            : [...svc.customers.values()];
        const p = page(ctx, all);
        return ok(200, { customers: p.out.map(customerView),
                         cursor: p.cursor });
    }

    function getCustomer(ctx) {
        return ok(200, { customer: customerView(
            customerOr404(ctx.params.mid)) });
    }

    function listTransactions(ctx) {
        const cid = ctx.query.get('customer_id');
        let all = svc.transactions;
        if (cid) {
            all = all.filter((t) => t.merchant_id === cid
                                    || String(t.customer_id) === cid);
        }
        const p = page(ctx, all);
        return ok(200, { transactions: p.out, cursor: p.cursor });
    }

    // --- activities -----------------------------------------------------

    function trackActivity(ctx) {
        const b = ctx.json() || {};
        if (!b.name) {
            throw llError(400, 'Invalid request', { name: ['is required'] });
        }
        const points = (svc.config.rules || {})[b.name];
        if (points === undefined) {
            throw llError(422, 'No active rule named ' + b.name);
        }
        if (!b.guest && !b.customer_id) {
            throw llError(400, 'Invalid request',
                          { customer_id: ['is required'] });
        }
        const a = { id: ++svc.seq.activity, name: b.name,
                    customer_id: b.customer_id || null,
                    merchant_id: b.merchant_id || null,
                    guest: !!b.guest, points: 0, at: isoNow() };
        svc.activityLog.push(a);
        if (b.merchant_id && svc.activities.has(String(b.merchant_id))) {
            a.duplicate = true;         // same activity again: no points
            return ok(svc.config.activity_status);
        }
        if (b.merchant_id) svc.activities.set(String(b.merchant_id), a);
        if (!b.guest) {
            const c = ensureCustomer(b.customer_id, b.customer_email);
            a.points = points;
            movePoints(c, points, 'activity', b.name,
                       { activity_id: a.id });
        }
        return ok(svc.config.activity_status);
    }

    // --- orders ---------------------------------------------------------

    // What the order is worth now, from its whole state.
    function orderPoints(o) {
        if (o.guest || !o.customer_id) return 0;
        if (o.cancellation_status === 'cancelled') return 0;
        if (o.refund_status === 'refunded') return 0;
        if (o.payment_status !== 'paid') return 0;
        const net = money(o.total_paid) - money(o.total_refunded);
        if (net <= 0) return 0;
        return Math.floor(net * Number(svc.config.points_per_unit));
    }

    // Moves the difference between what the order earned so far and
    // what it is worth now.
    function settleOrder(o) {
        const worth = orderPoints(o);
        const delta = worth - o.points;
        if (!delta) return;
        const c = ensureCustomer(o.customer_id, o.customer_email);
        if (delta > 0) {
            movePoints(c, delta, 'order', 'order ' + o.merchant_id,
                       { order_id: o.merchant_id });
        } else {
            // a reversal may take the balance below zero (UNCONFIRMED)
            c.points_approved += delta;
            c.updated_at = isoNow();
            svc.transactions.push({
                id: ++svc.seq.transaction, customer_id: c.id,
                merchant_id: c.merchant_id, points: delta,
                kind: 'order_reversal', reason: 'order ' + o.merchant_id,
                order_id: o.merchant_id, created_at: isoNow() });
        }
        o.points = worth;
    }

    function checkOrderBody(b, creating) {
        const details = {};
        if (creating && !b.merchant_id) details.merchant_id = ['is required'];
        if (creating && b.total === undefined) details.total = ['is required'];
        if (creating && !b.guest && !b.customer_id) {
            details.customer_id = ['is required'];
        }
        for (const f of ['total', 'total_paid', 'total_refunded',
                         'total_shipping']) {
            if (b[f] !== undefined && !Number.isFinite(Number(b[f]))) {
                details[f] = ['must be a decimal'];
            }
        }
        if (Object.keys(details).length) {
            throw llError(400, 'Invalid request', details);
        }
    }

    const ORDER_FIELDS = ['merchant_number', 'number', 'customer_id',
        'customer_email', 'total', 'total_shipping', 'total_tax',
        'total_discounts', 'total_paid', 'total_refunded', 'payment_status',
        'refund_status', 'cancellation_status', 'discount_codes',
        'claimed_reward_ids', 'date', 'guest', 'ip_address', 'user_agent',
        'referral_id', 'tracking_id'];

    function applyOrder(o, b) {
        for (const f of ORDER_FIELDS) if (b[f] !== undefined) o[f] = b[f];
        if (o.customer_id !== undefined && o.customer_id !== null) {
            o.customer_id = String(o.customer_id);
        }
        o.updated_at = isoNow();
        o.writes.push({ t: Date.now(), body: b });
        settleOrder(o);
    }

    function createOrder(ctx) {
        const b = ctx.json() || {};
        checkOrderBody(b, true);
        const mid = String(b.merchant_id);
        if (svc.orders.has(mid)) {
            throw llError(422, 'An order with this merchant_id already'
                          + ' exists', { merchant_id: ['is taken'] });
        }
        const o = { id: ++svc.seq.order, merchant_id: mid, points: 0,
                    payment_status: 'not_paid', refund_status: 'not_refunded',
                    cancellation_status: 'not_cancelled', total_paid: '0',
                    total_refunded: '0', created_at: isoNow(), writes: [] };
        svc.orders.set(mid, o);
        if (b.customer_id && !b.guest) {
            ensureCustomer(b.customer_id, b.customer_email);
        }
        applyOrder(o, b);
        return ok(svc.config.order_create_status);
    }

    function orderOr404(mid) {
        const o = svc.orders.get(String(mid));
        if (!o) throw llError(404, 'Order not found');
        return o;
    }

    function updateOrder(ctx) {
        const o = orderOr404(ctx.params.mid);
        const b = ctx.json() || {};
        checkOrderBody(b, false);
        applyOrder(o, b);
        return ok(svc.config.order_update_status);
    }

    function orderView(o) {
        const v = { id: o.id, merchant_id: o.merchant_id };
        for (const f of ORDER_FIELDS) if (o[f] !== undefined) v[f] = o[f];
        v.points = o.points;
        v.created_at = o.created_at;
        v.updated_at = o.updated_at;
        return v;
    }

    function getOrder(ctx) {
        return ok(200, { order: orderView(orderOr404(ctx.params.mid)) });
    }

    svc.routes = [
        ['GET', '/v2/customers', listCustomers],
        ['GET', '/v2/customers/:mid', getCustomer],
        ['POST', '/v2/customers/:mid/points', addPoints],
        ['POST', '/v2/customers/:mid/remove_points', removePoints],
        ['POST', '/v2/activities', trackActivity],
        ['POST', '/v2/orders', createOrder],
        ['GET', '/v2/orders/:mid', getOrder],
        ['PUT', '/v2/orders/:mid', updateOrder],
        ['GET', '/v2/transactions', listTransactions],
    ];

    // --- control --------------------------------------------------------

    svc.actions = {
        // { customers: [{ merchant_id, email, points? }] }
        seed(input) {
            const ids = (input.customers || []).map((s) => {
                if (!s.merchant_id) {
                    throw new HttpError(400, { error: 'merchant_id needed' });
                }
                const c = ensureCustomer(s.merchant_id, s.email);
                if (s.points) movePoints(c, s.points, 'add', 'seed');
                return c.id;
            });
            return { ids };
        },
    };

    // /_sandbox/state/loyaltylion[/customers[/MID]][/orders[/MID]]
    //                            [/transactions][/activities]
    svc.dump = (parts) => {
        const [what, id] = parts;
        if (what === 'customers' && id) {
            const c = svc.customers.get(id);
            if (!c) return {};
            return Object.assign(customerView(c), {
                transactions: svc.transactions.filter((t) =>
                    t.merchant_id === id) });
        }
        if (what === 'customers') {
            return { customers: [...svc.customers.values()]
                .map(customerView) };
        }
        if (what === 'orders' && id) {
            const o = svc.orders.get(id);
            return o ? Object.assign(orderView(o), { writes: o.writes }) : {};
        }
        if (what === 'orders') {
            return { orders: [...svc.orders.values()].map(orderView) };
        }
        if (what === 'transactions') return { transactions: svc.transactions };
        if (what === 'activities') return { activities: svc.activityLog };
        return { customers: svc.customers.size, orders: svc.orders.size,
                 transactions: svc.transactions.length,
                 activities: svc.activityLog.length };
    };

    return svc;
}

module.exports = { name: 'loyaltylion', create };
