'use strict';

// Webhook receivers: POST /hooks/<name> verifies Standard Webhooks
// signatures (the worker's `webhook` destination) and keeps each event
// once by its webhook-id, counting redeliveries.  A receiver exists once
// its secret is configured:
//   POST /_sandbox/do/hooks/receiver {"name":"crm","secret":"whsec_..."}

const crypto = require('crypto');
const { HttpError, ok } = require('./sandbox_core');

const TOLERANCE_S = 300;

function keyOf(secret) {
    const b64 = secret.startsWith('whsec_') ? secret.slice(6) : secret;
    return Buffer.from(b64, 'base64');
}

function verify(secret, headers, body) {
    const id = headers['webhook-id'];
    const ts = headers['webhook-timestamp'];
    const sigs = headers['webhook-signature'];
    if (!id || !ts || !sigs) return 'missing webhook-* headers';
    if (!/^[0-9]+$/.test(ts)) return 'bad webhook-timestamp';
    if (Math.abs(Date.now() / 1000 - Number(ts)) > TOLERANCE_S) {
        return 'webhook-timestamp outside tolerance';
    }
    const mac = crypto.createHmac('sha256', keyOf(secret))
        .update(id + '.' + ts + '.').update(body).digest();
    for (const s of sigs.split(' ')) {
        if (!s.startsWith('v1,')) continue;
        const got = Buffer.from(s.slice(3), 'base64');
        if (got.length === mac.length && crypto.timingSafeEqual(got, mac)) {
            return null;
        }
    }
    return 'no matching signature';
}

function create(sb) {
    const svc = {
        name: 'hooks',
        prefix: '/hooks',
        config: {},
        receivers: new Map(),
    };

    svc.reset = () => {
        for (const r of svc.receivers.values()) {
            r.events = new Map();
            r.deliveries = 0;
            r.rejected = 0;
        }
    };

    svc.error = (status, message) => new HttpError(status, { error: message });

    svc.actions = {
        receiver(input) {
            const unsigned = input.unsigned === true;
            if (!input.name || (!input.secret && !unsigned)) {
                throw new HttpError(400, { error: 'name and secret needed' });
            }
            svc.receivers.set(input.name, {
                secret: input.secret, unsigned, events: new Map(),
                deliveries: 0, rejected: 0, status: input.status || 204,
            });
            return { url: '/hooks/' + input.name };
        },
    };

    svc.routes = [
        ['POST', '/:name', (ctx) => {
            const r = svc.receivers.get(ctx.params.name);
            if (!r) throw svc.error(404, 'no such receiver');
            const why = r.unsigned ? null
                : verify(r.secret, ctx.headers, ctx.body);
            if (why) {
                r.rejected++;
                throw svc.error(401, why);
            }
            let env;
            try {
                env = JSON.parse(ctx.text());
            } catch (e) {
                r.rejected++;
                throw svc.error(400, 'body is not JSON');
            }
            r.deliveries++;
            const id = ctx.headers['webhook-id'];
            const seen = r.events.get(id);
            if (seen) {
                seen.deliveries++;
                return ok(r.status);
            }
            r.events.set(id, {
                id, deliveries: 1, at: Date.now(), type: env.type,
                store: env.store, src: env.src, corr: env.corr,
                envelope: env,
            });
            return ok(r.status);
        }],
    ];

    // /_sandbox/state/hooks[/NAME][?envelopes=1][?events=0]
    // events=0: the counts only (a benchmark's 200k events would make a
    // response of tens of MB)
    svc.dump = (parts, q) => {
        const out = {};
        const full = q.get('envelopes') === '1';
        const list = q.get('events') !== '0';
        for (const [name, r] of svc.receivers) {
            if (parts[0] && parts[0] !== name) continue;
            const events = [];
            let duplicates = 0;
            for (const e of r.events.values()) {
                duplicates += e.deliveries - 1;
                const o = { id: e.id, deliveries: e.deliveries, type: e.type,
                            store: e.store, src: e.src, corr: e.corr,
                            at: e.at };
                if (full) o.envelope = e.envelope;
                if (list) events.push(o);
            }
            out[name] = { deliveries: r.deliveries, distinct: r.events.size,
                          duplicates, rejected: r.rejected,
                          ...(r.unsigned ? { unsigned: true } : {}),
                          ...(list ? { events } : {}) };
        }
        return parts[0] ? (out[parts[0]] || {}) : { receivers: out };
    };

    return svc;
}

module.exports = { name: 'hooks', create };
