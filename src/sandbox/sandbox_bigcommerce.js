'use strict';

// BigCommerce REST (docs/sandbox.md): what the worker calls back after a
// thin webhook.  Stores by hash in the path, X-Auth-Token, v2 orders and
// their products (seeded by tests), v3 customers, v2 coupons with unique
// codes, and the per-store request quota with its X-Rate-Limit-* headers.
// v2 and v3 answer errors in their own formats.

const { HttpError, ok } = require('./sandbox_core');

const STORE_PATH = /^\/stores\/([^/]+)(\/.*)?$/;
const COUPON_TYPES = ['per_item_discount', 'percentage_discount',
    'per_total_discount', 'shipping_discount', 'free_shipping',
    'promotion'];
const V3_ERROR_TYPE = 'https://developer.bigcommerce.com/api-docs/'
    + 'getting-started/api-status-codes';

function defaultConfig() {
    return {
        stores: { sandbox1: { token: 'bc_sandbox_token' } },
        quota: 150,                     // UNCONFIRMED plan default
        window_ms: 30000,
        v2_empty_list_status: 204,      // v2 lists answer 204 when empty
    };
}

// RFC 2822 the way BigCommerce writes it: "Tue, 20 Nov 2012 00:00:00 +0000"
function rfc2822(ms) {
    return new Date(ms).toUTCString().replace('GMT', '+0000');
}

function dec(v) {
    const n = Number(v === undefined || v === null ? 0 : v);
    return (Number.isFinite(n) ? n : 0).toFixed(4);
}

function apiOf(path) {
    const m = STORE_PATH.exec(path);
    const rest = (m && m[2]) || '';
    return rest.startsWith('/v3/') ? 'v3' : 'v2';
}

function v2Error(status, message, details) {
    const e = { status, message };
    if (details) e.details = details;
    return new HttpError(status, [e]);
}

function v3Error(status, title, errors) {
    return new HttpError(status, { status, title, type: V3_ERROR_TYPE,
                                   errors: errors || {} });
}

function create(sb) {
    const svc = {
        name: 'bigcommerce',
        prefix: '/bigcommerce',
        config: defaultConfig(),
    };

    svc.reset = () => {
        svc.stores = new Map();         // hash -> { orders, customers, ... }
    };
    svc.reset();

    function storeData(hash) {
        let s = svc.stores.get(hash);
        if (!s) {
            s = { orders: new Map(), products: new Map(),
                  customers: new Map(), coupons: new Map(),
                  couponCodes: new Map(), couponSeq: 0,
                  customerSeq: 0 };
            svc.stores.set(hash, s);
        }
        return s;
    }

    svc.error = (status, message, code, ctx) =>
        (ctx && apiOf(ctx.path) === 'v3'
            ? v3Error(status, message) : v2Error(status, message));

    svc.faultBody = (status, ctx) => {
        if (status === 429) return '';
        return ctx && apiOf(ctx.path) === 'v3'
            ? { status, title: 'Injected fault', type: V3_ERROR_TYPE,
                errors: {} }
            : [{ status, message: 'Injected fault' }];
    };

    // --- store, quota, token --------------------------------------------

    function hashOf(ctx) {
        const m = STORE_PATH.exec(ctx.path);
        return m ? m[1] : null;
    }

    function rateHeaders(r) {
        return {
            'X-Rate-Limit-Requests-Left': String(r.remaining),
            'X-Rate-Limit-Requests-Quota': String(r.limit),
            'X-Rate-Limit-Time-Reset-Ms': String(r.reset_ms),
            'X-Rate-Limit-Time-Window-Ms': String(svc.config.window_ms),
        };
    }

    // One quota window per store, every request counts.
    svc.limit = (ctx) => {
        const hash = hashOf(ctx);
        if (!hash || !svc.config.stores[hash]) return;
        const r = sb.limiter.take('bigcommerce:' + hash,
                                  Number(svc.config.quota),
                                  Number(svc.config.window_ms));
        ctx.rate = r;
        if (!r.ok) throw new HttpError(429, '', rateHeaders(r));
    };

    svc.decorate = (ctx, headers) => {
        if (ctx.rate) Object.assign(headers, rateHeaders(ctx.rate));
    };

    svc.auth = (ctx) => {
        const hash = hashOf(ctx);
        const store = hash && svc.config.stores[hash];
        if (!store) {
            throw svc.error(404, 'Store not found', 'NOT_FOUND', ctx);
        }
        const token = ctx.headers['x-auth-token'];
        if (!token || token !== store.token) {
            throw svc.error(401, 'You must provide a valid X-Auth-Token'
                            + ' header', 'UNAUTHORIZED', ctx);
        }
        ctx.store = storeData(hash);
        ctx.storeHash = hash;
        return { store: hash };
    };

    function baseUrl(ctx) {
        return 'http://' + (ctx.headers.host || '127.0.0.1') + svc.prefix
            + '/stores/' + ctx.storeHash;
    }

    // --- orders ---------------------------------------------------------

    const ORDER_MONEY = ['subtotal_ex_tax', 'subtotal_inc_tax', 'subtotal_tax',
        'total_ex_tax', 'total_inc_tax', 'total_tax', 'refunded_amount',
        'discount_amount', 'coupon_discount', 'shipping_cost_ex_tax',
        'shipping_cost_inc_tax', 'handling_cost_inc_tax',
        'wrapping_cost_inc_tax', 'store_credit_amount',
        'gift_certificate_amount'];
    const PRODUCT_MONEY = ['base_price', 'price_ex_tax', 'price_inc_tax',
        'price_tax', 'base_total', 'total_ex_tax', 'total_inc_tax',
        'total_tax'];
    const STATUS_NAMES = { 0: 'Incomplete', 1: 'Pending', 2: 'Shipped',
        3: 'Partially Shipped', 4: 'Refunded', 5: 'Cancelled',
        6: 'Declined', 7: 'Awaiting Payment', 8: 'Awaiting Pickup',
        9: 'Awaiting Shipment', 10: 'Completed', 11: 'Awaiting Fulfillment',
        12: 'Manual Verification Required', 13: 'Disputed',
        14: 'Partially Refunded' };

    function normalizeOrder(o, existing) {
        const now = Date.now();
        const out = Object.assign({
            customer_id: 0, status_id: 11, currency_code: 'USD',
            payment_status: 'captured', items_total: 0,
            date_created: rfc2822(now), billing_address: {},
        }, existing, o);
        out.id = Number(out.id);
        out.status = STATUS_NAMES[out.status_id] || out.status || 'Unknown';
        out.date_modified = rfc2822(now);
        for (const f of ORDER_MONEY) out[f] = dec(out[f]);
        return out;
    }

    function normalizeProduct(orderId, p, i) {
        const out = Object.assign({ id: orderId * 100 + i + 1,
                                    quantity: 1, type: 'physical',
                                    product_id: 0, sku: '', name: '' }, p);
        out.order_id = orderId;
        for (const f of PRODUCT_MONEY) out[f] = dec(out[f]);
        return out;
    }

    function orderOr404(ctx) {
        const o = ctx.store.orders.get(Number(ctx.params.id));
        if (!o) {
            throw v2Error(404, 'The requested resource was not found.');
        }
        return o;
    }

    function orderView(ctx, o) {
        const url = baseUrl(ctx) + '/v2/orders/' + o.id;
        return Object.assign({}, o, {
            products: { url: url + '/products',
                        resource: '/orders/' + o.id + '/products' },
            coupons: { url: url + '/coupons',
                       resource: '/orders/' + o.id + '/coupons' },
        });
    }

    function getOrder(ctx) {
        return ok(200, orderView(ctx, orderOr404(ctx)));
    }

    function getOrderProducts(ctx) {
        const o = orderOr404(ctx);
        return ok(200, ctx.store.products.get(o.id) || []);
    }

    function v2List(items) {
        if (!items.length) {
            const status = Number(svc.config.v2_empty_list_status);
            return ok(status, status === 204 ? undefined : []);
        }
        return ok(200, items);
    }

    function listOrders(ctx) {
        const cid = ctx.query.get('customer_id');
        const minId = Number(ctx.query.get('min_id') || 0);
        const all = [...ctx.store.orders.values()]
            .filter((o) => (!cid || String(o.customer_id) === cid)
                           && o.id >= minId)
            .sort((a, b) => a.id - b.id);
        return v2List(all.map((o) => orderView(ctx, o)));
    }

    // --- customers (v3) -------------------------------------------------

    function customerView(c) {
        return Object.assign({
            company: '', first_name: '', last_name: '', phone: '',
            customer_group_id: 0, notes: '', tax_exempt_category: '',
            registration_ip_address: '', origin_channel_id: 1,
            channel_ids: null,
            accepts_product_review_abandoned_cart_emails: false,
            authentication: { force_password_reset: false },
        }, c);
    }

    function listFilter(ctx, name, check) {
        const raw = ctx.query.get(name);
        if (raw === null) return null;
        const values = raw.split(',').map((s) => s.trim()).filter(Boolean);
        const bad = values.find((v) => !check(v));
        if (bad !== undefined || !values.length) {
            throw v3Error(422, 'The filter(s): ' + name + ' specified are'
                          + ' invalid.', { [name]: 'invalid value' });
        }
        return values;
    }

    function listCustomers(ctx) {
        const ids = listFilter(ctx, 'id:in', (v) => /^[0-9]+$/.test(v));
        const emails = listFilter(ctx, 'email:in', (v) => v.includes('@'));
        const pageNo = Math.max(1, Number(ctx.query.get('page') || 1));
        const limit = Math.min(250, Math.max(1,
            Number(ctx.query.get('limit') || 50)));
        const lower = emails && emails.map((e) => e.toLowerCase());
        const all = [...ctx.store.customers.values()].filter((c) =>
            (!ids || ids.includes(String(c.id)))
            && (!lower || lower.includes(String(c.email).toLowerCase())))
            .sort((a, b) => a.id - b.id);
        const data = all.slice((pageNo - 1) * limit, pageNo * limit);
        return ok(200, { data: data.map(customerView), meta: { pagination: {
            total: all.length, count: data.length, per_page: limit,
            current_page: pageNo,
            total_pages: Math.max(1, Math.ceil(all.length / limit)),
            links: { current: '?page=' + pageNo + '&limit=' + limit },
        } } });
    }

    // --- coupons (v2) ---------------------------------------------------

    function couponInput(b) {
        const missing = ['name', 'code', 'type', 'amount', 'applies_to']
            .find((f) => b[f] === undefined || b[f] === '');
        if (missing) {
            throw v2Error(400, 'The required field \'' + missing
                          + '\' was not supplied.');
        }
        if (!COUPON_TYPES.includes(b.type)) {
            throw v2Error(400, 'The field \'type\' is invalid.',
                          { invalid_reason: 'unknown coupon type' });
        }
        if (!Number.isFinite(Number(b.amount))) {
            throw v2Error(400, 'The field \'amount\' is invalid.');
        }
    }

    function createCoupon(ctx) {
        const b = ctx.json();
        if (!b || typeof b !== 'object' || Array.isArray(b)) {
            throw v2Error(400, 'The request body must be a JSON object.');
        }
        couponInput(b);
        const s = ctx.store;
        const code = String(b.code).toLowerCase();
        if (s.couponCodes.has(code)) {
            throw v2Error(409, 'The field \'code\' must be unique.');
        }
        const c = {
            id: ++s.couponSeq, name: b.name, type: b.type,
            amount: dec(b.amount), min_purchase: dec(b.min_purchase),
            expires: b.expires || '', enabled: b.enabled !== false,
            code: String(b.code), applies_to: b.applies_to, num_uses: 0,
            max_uses: Number(b.max_uses || 0),
            max_uses_per_customer: Number(b.max_uses_per_customer || 0),
            restricted_to: b.restricted_to || [],
            shipping_methods: b.shipping_methods || null,
            date_created: rfc2822(Date.now()),
        };
        s.coupons.set(c.id, c);
        s.couponCodes.set(code, c.id);
        return ok(201, c);
    }

    function listCoupons(ctx) {
        const code = ctx.query.get('code');
        if (code === null) return v2List([...ctx.store.coupons.values()]);
        const id = ctx.store.couponCodes.get(code.toLowerCase());
        return v2List(id ? [ctx.store.coupons.get(id)] : []);
    }

    function couponOr404(ctx) {
        const c = ctx.store.coupons.get(Number(ctx.params.id));
        if (!c) throw v2Error(404, 'The requested resource was not found.');
        return c;
    }

    function getCoupon(ctx) {
        return ok(200, couponOr404(ctx));
    }

    function deleteCoupon(ctx) {
        const c = couponOr404(ctx);
        ctx.store.coupons.delete(c.id);
        ctx.store.couponCodes.delete(c.code.toLowerCase());
        return ok(204);
    }

    const S = '/stores/:hash';
    svc.routes = [
        ['GET', S + '/v2/orders', listOrders],
        ['GET', S + '/v2/orders/:id', getOrder],
        ['GET', S + '/v2/orders/:id/products', getOrderProducts],
        ['GET', S + '/v3/customers', listCustomers],
        ['POST', S + '/v2/coupons', createCoupon],
        ['GET', S + '/v2/coupons', listCoupons],
        ['GET', S + '/v2/coupons/:id', getCoupon],
        ['DELETE', S + '/v2/coupons/:id', deleteCoupon],
    ];

    // --- control --------------------------------------------------------

    function storeFor(input) {
        const hash = input.store || Object.keys(svc.config.stores)[0];
        if (!svc.config.stores[hash]) {
            throw new HttpError(400, { error: 'no such store ' + hash });
        }
        return storeData(hash);
    }

    svc.actions = {
        // { store?, order: {id, ...}, products: [...] }: inserts or
        // replaces (a refund or a status change is a new seed)
        seed_order(input) {
            const s = storeFor(input);
            const o = input.order || {};
            if (!o.id) throw new HttpError(400, { error: 'order.id needed' });
            const order = normalizeOrder(o, s.orders.get(Number(o.id)));
            s.orders.set(order.id, order);
            if (input.products) {
                s.products.set(order.id, input.products.map((p, i) =>
                    normalizeProduct(order.id, p, i)));
            }
            return { id: order.id };
        },
        // { store?, customers: [{ id?, email, ... }] }
        seed_customers(input) {
            const s = storeFor(input);
            const ids = (input.customers || []).map((c) => {
                const id = Number(c.id || ++s.customerSeq);
                s.customerSeq = Math.max(s.customerSeq, id);
                const iso = new Date().toISOString();
                s.customers.set(id, Object.assign({ date_created: iso,
                    date_modified: iso }, c, { id }));
                return id;
            });
            return { ids };
        },
        // { store?, code }: a shopper uses the coupon once
        redeem_coupon(input) {
            const s = storeFor(input);
            const c = s.coupons.get(
                s.couponCodes.get(String(input.code).toLowerCase()));
            if (!c) throw new HttpError(404, { error: 'no such coupon' });
            if (!c.enabled || (c.max_uses && c.num_uses >= c.max_uses)) {
                return { redeemed: false, num_uses: c.num_uses };
            }
            c.num_uses++;
            return { redeemed: true, num_uses: c.num_uses };
        },
    };

    // /_sandbox/state/bigcommerce[/HASH[/coupons|/orders|/customers]]
    svc.dump = (parts) => {
        const [hash, what] = parts;
        if (!hash) {
            const out = {};
            for (const [h, s] of svc.stores) {
                out[h] = { orders: s.orders.size, customers: s.customers.size,
                           coupons: s.coupons.size };
            }
            return { stores: out };
        }
        const s = svc.stores.get(hash);
        if (!s) return {};
        if (what === 'coupons') return { coupons: [...s.coupons.values()] };
        if (what === 'orders') return { orders: [...s.orders.values()] };
        if (what === 'customers') {
            return { customers: [...s.customers.values()] };
        }
        return { orders: s.orders.size, customers: s.customers.size,
                 coupons: s.coupons.size };
    };

    return svc;
}

module.exports = { name: 'bigcommerce', create };
