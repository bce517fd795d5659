'use strict';

// Salesforce, as the worker sees it (docs/sandbox.md, apis.md §11): the
// OAuth token endpoint (client credentials and JWT bearer), sObject
// upsert by external ID, create, read, sObject Collections upsert and
// create (mixed types, platform events), relationships by external id
// and platform event publish under /services/data/vXX.X, with
// Sforce-Limit-Info, a daily API budget and injectable per-record errors.
// Saves check unique fields, duplicate rules, validation rules, lengths
// and types; every write stamps the system fields (SystemModstamp,
// LastModifiedById, ...) and lands in the record's history so tests can
// count them.  Bulk API 2.0 and SOQL live in sandbox_salesforce_bulk.js
// and sandbox_salesforce_soql.js, on the helpers in svc.api.

const crypto = require('crypto');
const { HttpError, bearer, ok } = require('./sandbox_core');
const bulk = require('./sandbox_salesforce_bulk');
const soql = require('./sandbox_salesforce_soql');

const COLLECTION_MAX = 200;
const ID_CHECKSUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345';
const JWT_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const ROLLED_BACK = 'Record rolled back because not all records were'
    + ' valid and the request was using AllOrNone header';

function defaultConfig() {
    return {
        org_id: '00D000000000001AAA',
        // client credentials: consumer key -> { secret, user }; a client
        // without a run-as user has the flow disabled
        clients: {
            'sandbox-client-id': {
                secret: 'sandbox-client-secret',
                user: 'integration@loyalty.example',
            },
        },
        jwt: {
            consumer_key: 'sandbox-client-id',
            public_key: null,           // PEM public key or certificate
            usernames: ['integration@loyalty.example'],
            audiences: ['https://login.salesforce.com',
                        'https://test.salesforce.com'],
            skew_s: 180,
            max_exp_ahead_s: 86400,     // UNCONFIRMED; catches ms values
        },
        token_ttl_s: 7200,
        daily_limit: 15000,
        requests_per_s: 0,              // 0: no per-second cap
        min_api_version: 31.0,
        max_api_version: 66.0,
        enqueue_events: false,          // OPERATION_ENQUEUED on publish
        case_sensitive_ext_ids: false,
        person_accounts: true,
        // values of these fields are unique per object: DUPLICATE_VALUE
        unique_external_ids: true,
        unique_fields: {},              // { OBJ: [field, ...] }
        // [{ object, field, name? }]: exact (case-insensitive) matches
        // answer DUPLICATES_DETECTED, like an active duplicate rule
        duplicate_rules: [],
        // [{ object, field, allowed | max_length | required | pattern,
        //    name?, message? }]: FIELD_CUSTOM_VALIDATION_EXCEPTION
        validation_rules: [],
        // { OBJ: { field: 'string'|'number'|'boolean'|'date'|'datetime' } }
        field_types: {},
        field_lengths: {},              // { OBJ: { field: N } }: too long
        timestamp_precision_ms: 1000,   // real stamps end in .000
        crm_user: 'crm.user@loyalty.example',   // crm_edit's author
        query_batch_size: 2000,
        bulk_start_ms: 50,              // UploadComplete -> InProgress
        bulk_processing_ms: 200,        // InProgress -> JobComplete
        objects: {
            Contact: { prefix: '003', external_ids: ['ExtId__c',
                                                     'Loyalty_Id__c'] },
            Lead: { prefix: '00Q', external_ids: ['ExtId__c',
                                                  'Loyalty_Id__c'] },
            Account: { prefix: '001', external_ids: ['ExtId__c',
                                                     'Loyalty_Id__c'] },
            Loyalty_Event__c: { prefix: 'a0X',
                                external_ids: ['Event_Id__c'],
                                lookups: { Contact__r: 'Contact' } },
            // Who is polymorphic (Contact or Lead): attributes.type says
            Task: { prefix: '00T', external_ids: ['Loyalty_Task_Id__c'] },
        },
    };
}

// 15-character id plus the 3-character case checksum of real ids.
function withChecksum(id15) {
    let tail = '';
    for (let chunk = 0; chunk < 3; chunk++) {
        let bits = 0;
        for (let i = 0; i < 5; i++) {
            const c = id15[chunk * 5 + i];
            if (c >= 'A' && c <= 'Z') bits |= 1 << i;
        }
        tail += ID_CHECKSUM[bits];
    }
    return id15 + tail;
}

function sfTime(ms) {
    return new Date(ms).toISOString().replace('Z', '+0000');
}

function sfError(status, errorCode, message, fields) {
    const e = { message, errorCode };
    if (fields) e.fields = fields;
    return new HttpError(status, [e]);
}

function oauthError(error, description) {
    return new HttpError(400, { error, error_description: description });
}

function b64url(buf) {
    return Buffer.from(buf).toString('base64').replace(/=+$/, '')
        .replace(/\+/g, '-').replace(/\//g, '_');
}

function fromB64url(s) {
    return Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

function sameSecret(a, b) {
    const x = Buffer.from(String(a));
    const y = Buffer.from(String(b));
    return x.length === y.length && crypto.timingSafeEqual(x, y);
}

function publicKeyOf(pem) {
    if (/BEGIN CERTIFICATE/.test(pem)) {
        return new crypto.X509Certificate(pem).publicKey;
    }
    return crypto.createPublicKey(pem);
}

function parseVersion(ver) {
    const m = /^v([0-9]+)\.([0-9])$/.exec(ver || '');
    return m ? Number(m[1] + '.' + m[2]) : NaN;
}

function create(sb) {
    const svc = {
        name: 'salesforce',
        prefix: '/salesforce',
        config: defaultConfig(),
        // username -> user id; kept across resets so ids stay stable
        users: new Map(),
        // Bulk and SOQL (their own files) plug in: { reset, dump? }
        extensions: [],
    };

    svc.reset = () => {
        svc.tokens = new Map();
        svc.objects = new Map();
        svc.events = [];
        svc.injected = [];
        svc.injectSeq = 0;
        svc.apiUsed = 0;
        svc.clockOffset = 0;
        for (const e of svc.extensions) e.reset();
    };
    svc.reset();

    svc.userId = (username) => {
        if (!svc.users.has(username)) {
            svc.users.set(username, withChecksum(sb.newId('005', 12)));
        }
        return svc.users.get(username);
    };

    // The author of a call's writes: the token's user.
    const actorOf = (ctx) => svc.userId(ctx.principal
        ? ctx.principal.user : 'unknown');

    // Record clock: advance_clock moves it; stamps are cut to
    // timestamp_precision_ms like Salesforce's whole seconds.
    svc.now = () => {
        const prec = Number(svc.config.timestamp_precision_ms) || 1;
        const t = Date.now() + svc.clockOffset;
        return t - (t % prec);
    };

    svc.error = (status, message, code) =>
        sfError(status, code || 'UNKNOWN_EXCEPTION', message);

    svc.faultBody = (status) => {
        const known = {
            400: ['UNABLE_TO_LOCK_ROW', 'unable to obtain exclusive access'
                  + ' to this record or 1 records'],
            401: ['INVALID_SESSION_ID', 'Session expired or invalid'],
            403: ['REQUEST_LIMIT_EXCEEDED', 'TotalRequests Limit exceeded.'],
            503: ['SERVER_UNAVAILABLE', 'Server temporarily unavailable'],
        };
        const [code, message] = known[status]
            || ['UNKNOWN_EXCEPTION', 'An unexpected error occurred'];
        return [{ message, errorCode: code }];
    };

    // --- paths, usage ---------------------------------------------------

    const isVersionsRoot = (p) => p === '/services/data'
        || p === '/services/data/';
    const isDataCall = (p) => p.startsWith('/services/data/')
        && !isVersionsRoot(p);
    const isTokenCall = (p) => /^\/services\/oauth2\/token\/?$/.test(p);

    // No documented per-second limit: an optional stand-in for the
    // concurrency cap, answered like Salesforce does (UNCONFIRMED).
    svc.limit = (ctx) => {
        const rate = Number(svc.config.requests_per_s) || 0;
        if (!rate || !isDataCall(ctx.path)) return;
        const r = sb.limiter.take('salesforce', rate, 1000);
        if (!r.ok) {
            throw sfError(403, 'REQUEST_LIMIT_EXCEEDED', 'ConcurrentRequests'
                          + ' (Concurrent API Requests) Limit exceeded.');
        }
    };

    function chargeApiCall() {
        if (svc.apiUsed >= Number(svc.config.daily_limit)) {
            throw sfError(403, 'REQUEST_LIMIT_EXCEEDED',
                          'TotalRequests Limit exceeded.');
        }
        svc.apiUsed++;
    }

    svc.auth = (ctx) => {
        if (isTokenCall(ctx.path) || isVersionsRoot(ctx.path)) return null;
        const token = bearer(ctx);
        const t = token && svc.tokens.get(token);
        if (!t || t.expires <= Date.now()) {
            if (t) svc.tokens.delete(token);
            throw new HttpError(401, [{ message: 'Session expired or invalid',
                                        errorCode: 'INVALID_SESSION_ID' }],
                                { 'WWW-Authenticate': 'Token' });
        }
        if (isDataCall(ctx.path)) chargeApiCall();
        return t;
    };

    svc.decorate = (ctx, headers) => {
        if (!isDataCall(ctx.path)) return;
        headers['Sforce-Limit-Info'] = 'api-usage=' + svc.apiUsed + '/'
            + svc.config.daily_limit;
    };

    // --- OAuth ----------------------------------------------------------

    function instanceUrl(ctx) {
        return 'http://' + (ctx.headers.host || '127.0.0.1') + svc.prefix;
    }

    function newToken() {
        return svc.config.org_id.slice(0, 15) + '!'
            + b64url(crypto.randomBytes(72));
    }

    function issueToken(ctx, grant, client, user) {
        const token = newToken();
        const issued = Date.now();
        svc.tokens.set(token, {
            grant, client, user, issued,
            expires: issued + Number(svc.config.token_ttl_s) * 1000,
        });
        const base = instanceUrl(ctx);
        const userId = svc.userId(user);
        return {
            access_token: token,
            token_format: 'opaque',
            instance_url: base,
            id: base + '/id/' + svc.config.org_id + '/' + userId,
            token_type: 'Bearer',
            issued_at: String(issued),
            scope: 'api',
            api_instance_url: base,
        };
    }

    function basicCredentials(ctx) {
        const m = /^Basic\s+(\S+)$/i.exec(ctx.headers.authorization || '');
        if (!m) return {};
        const s = Buffer.from(m[1], 'base64').toString('utf8');
        const i = s.indexOf(':');
        return i < 0 ? {} : { id: s.slice(0, i), secret: s.slice(i + 1) };
    }

    function clientCredentialsGrant(ctx, form) {
        const basic = basicCredentials(ctx);
        const id = form.get('client_id') || basic.id;
        const secret = form.get('client_secret') || basic.secret;
        const client = id && svc.config.clients[id];
        if (!client || secret === undefined
            || !sameSecret(secret, client.secret)) {
            throw oauthError('invalid_client', 'invalid client credentials');
        }
        if (!client.user) {
            throw oauthError('invalid_grant',
                             'no client credentials user enabled');
        }
        const out = issueToken(ctx, 'client_credentials', id, client.user);
        out.signature = crypto.createHmac('sha256', client.secret)
            .update(out.id + out.issued_at).digest('base64');
        return out;
    }

    function jwtClaims(assertion) {
        const parts = String(assertion || '').split('.');
        if (parts.length !== 3) {
            throw oauthError('invalid_grant', 'invalid assertion');
        }
        let header;
        let claims;
        try {
            header = JSON.parse(fromB64url(parts[0]).toString('utf8'));
            claims = JSON.parse(fromB64url(parts[1]).toString('utf8'));
        } catch (e) {
            throw oauthError('invalid_grant', 'invalid assertion');
        }
        return { parts, header, claims };
    }

    function checkJwtSignature(jc, parts, header) {
        if (header.alg !== 'RS256') {
            throw oauthError('invalid_grant', 'invalid assertion');
        }
        if (!jc.public_key) {
            throw oauthError('invalid_grant', 'invalid assertion');
        }
        let good = false;
        try {
            good = crypto.verify('sha256',
                Buffer.from(parts[0] + '.' + parts[1]),
                publicKeyOf(jc.public_key), fromB64url(parts[2]));
        } catch (e) {
            good = false;   // an unusable key or signature: not verified
        }
        if (!good) throw oauthError('invalid_grant', 'invalid assertion');
    }

    // Claim checks of apis.md §11.2; the descriptions are UNCONFIRMED.
    function checkJwtClaims(jc, c) {
        const now = Date.now() / 1000;
        if (c.iss !== jc.consumer_key) {
            throw oauthError('invalid_client_id', 'client identifier invalid');
        }
        const auds = [].concat(jc.audiences || []);
        if (typeof c.aud !== 'string' || !auds.includes(c.aud)) {
            throw oauthError('invalid_grant', 'audience is invalid');
        }
        if (typeof c.exp !== 'number' || !Number.isFinite(c.exp)) {
            throw oauthError('invalid_grant', 'invalid assertion');
        }
        if (c.exp > now + Number(jc.max_exp_ahead_s)) {
            // exp in milliseconds lands here
            throw oauthError('invalid_grant', 'invalid assertion');
        }
        if (c.exp + Number(jc.skew_s) < now) {
            throw oauthError('invalid_grant', 'expired authorization code');
        }
        if (!(jc.usernames || []).includes(c.sub)) {
            throw oauthError('invalid_grant',
                             'user hasn\'t approved this consumer');
        }
    }

    function jwtGrant(ctx, form) {
        const jc = svc.config.jwt || {};
        const { parts, header, claims } = jwtClaims(form.get('assertion'));
        checkJwtSignature(jc, parts, header);
        checkJwtClaims(jc, claims);
        const out = issueToken(ctx, 'jwt_bearer', claims.iss, claims.sub);
        delete out.token_format;
        delete out.api_instance_url;
        return out;
    }

    function tokenEndpoint(ctx) {
        const form = new URLSearchParams(ctx.text());
        const grant = form.get('grant_type');
        if (grant === 'client_credentials') {
            return ok(200, clientCredentialsGrant(ctx, form));
        }
        if (grant === JWT_GRANT) return ok(200, jwtGrant(ctx, form));
        throw oauthError('unsupported_grant_type', 'grant type not supported');
    }

    // --- records --------------------------------------------------------

    function objectConf(name) {
        const conf = svc.config.objects[name];
        if (!conf) {
            throw sfError(404, 'NOT_FOUND',
                          'The requested resource does not exist');
        }
        return conf;
    }

    function table(name) {
        let t = svc.objects.get(name);
        if (!t) {
            t = { byId: new Map(), index: new Map() };
            svc.objects.set(name, t);
        }
        return t;
    }

    function extKey(value) {
        const s = String(value);
        return svc.config.case_sensitive_ext_ids ? s : s.toLowerCase();
    }

    function checkExtField(name, field) {
        if (!(objectConf(name).external_ids || []).includes(field)) {
            throw sfError(404, 'NOT_FOUND', 'Provided external ID field does'
                          + ' not exist or is not accessible: ' + field);
        }
    }

    function findByExt(name, field, value) {
        const byValue = table(name).index.get(field);
        const ids = byValue && byValue.get(extKey(value));
        const t = table(name);
        return ids ? [...ids].map((id) => t.byId.get(id)) : [];
    }

    function findById(name, id) {
        return table(name).byId.get(String(id).slice(0, 15)) || null;
    }

    function reindex(name, rec, before) {
        const t = table(name);
        for (const field of objectConf(name).external_ids || []) {
            const old = before[field];
            const now = rec.fields[field];
            if (old === now) continue;
            const byOld = t.index.get(field);
            const set = old !== undefined && old !== null && byOld
                && byOld.get(extKey(old));
            if (set) {
                set.delete(rec.Id.slice(0, 15));
                if (!set.size) byOld.delete(extKey(old));
            }
            if (now === undefined || now === null) continue;
            if (!t.index.has(field)) t.index.set(field, new Map());
            const byValue = t.index.get(field);
            if (!byValue.has(extKey(now))) byValue.set(extKey(now), new Set());
            byValue.get(extKey(now)).add(rec.Id.slice(0, 15));
        }
    }

    // Creates (rec null) or updates a record; every write is kept.
    // by: the author's user id; stamps: system fields a seed sets.
    function writeRecord(name, rec, fields, via, by, stamps) {
        const now = svc.now();
        const st = stamps || {};
        const created = !rec;
        if (created) {
            const id = withChecksum(sb.newId(objectConf(name).prefix, 12));
            rec = { Id: id, type: name, fields: {},
                    created: st.created || now,
                    createdBy: st.createdBy || by, history: [] };
            table(name).byId.set(id.slice(0, 15), rec);
            if (name === 'Account' && svc.config.person_accounts) {
                rec.fields.IsPersonAccount = !('Name' in fields);
            }
        }
        const before = Object.assign({}, rec.fields);
        Object.assign(rec.fields, fields);
        rec.modified = st.modified || now;
        rec.modifiedBy = st.modifiedBy || by;
        rec.history.push({ t: now, op: created ? 'create' : 'update', via,
                           by, fields: Object.assign({}, fields) });
        reindex(name, rec, before);
        return { rec, created };
    }

    function recordView(rec, ver, only) {
        const out = {
            attributes: { type: rec.type,
                          url: '/services/data/v' + ver.toFixed(1)
                               + '/sobjects/' + rec.type + '/' + rec.Id },
            Id: rec.Id,
        };
        for (const [k, v] of Object.entries(rec.fields)) {
            if (!only || only.includes(k)) out[k] = v;
        }
        for (const [k, v] of Object.entries(systemFields(rec))) {
            if (!only || only.includes(k)) out[k] = v;
        }
        return out;
    }

    // Maintained on every write, never written by a client.
    function systemFields(rec) {
        return {
            CreatedDate: sfTime(rec.created),
            CreatedById: rec.createdBy,
            LastModifiedDate: sfTime(rec.modified),
            LastModifiedById: rec.modifiedBy,
            SystemModstamp: sfTime(rec.modified),
        };
    }

    function apiVersion(ctx) {
        const v = parseVersion(ctx.params.ver);
        if (!(v >= svc.config.min_api_version
              && v <= svc.config.max_api_version)) {
            throw sfError(404, 'NOT_FOUND',
                          'The requested resource does not exist');
        }
        return v;
    }

    function bodyFields(ctx) {
        const b = ctx.json();
        if (!b || typeof b !== 'object' || Array.isArray(b)) {
            throw sfError(400, 'JSON_PARSER_ERROR',
                          'The request body must be a JSON object');
        }
        const fields = Object.assign({}, b);
        delete fields.attributes;
        return fields;
    }

    // A relationship by external id, {"Contact__r": {"attributes":
    // {"type": "Contact"}, "Loyalty_Id__c": "v"}}, becomes the id field
    // (Contact__c; Who -> WhoId).  A record that is not there is the
    // per-record INVALID_FIELD "Foreign key external ID: ... not found"
    // Salesforce answers.  -> { fields } or { error }.
    function resolveLookups(name, fields) {
        const out = {};
        for (const [k, v] of Object.entries(fields)) {
            if (!v || typeof v !== 'object' || Array.isArray(v)) {
                out[k] = v;
                continue;
            }
            const rel = Object.assign({}, v);
            const type = (rel.attributes && rel.attributes.type)
                || ((objectConf(name).lookups || {})[k]);
            delete rel.attributes;
            const keys = Object.keys(rel);
            if (!type || !svc.config.objects[type] || keys.length !== 1) {
                return { error: failure('INVALID_FIELD', 'Cannot resolve'
                    + ' the relationship ' + k + ' on ' + name
                    + (type ? '' : ': a polymorphic field needs'
                       + ' attributes.type'), [k]) };
            }
            const field = keys[0];
            const value = rel[field];
            if (!(objectConf(type).external_ids || []).includes(field)) {
                return { error: failure('INVALID_FIELD', 'Field ' + field
                    + ' is not an external id field of ' + type, [k]) };
            }
            const found = findByExt(type, field, value);
            if (found.length !== 1) {
                return { error: failure('INVALID_FIELD', 'Foreign key'
                    + ' external ID: ' + value + (found.length
                        ? ' matches more than one record'
                        : ' not found') + ' for field ' + field
                    + ' in entity ' + type, []) };
            }
            out[k.endsWith('__r') ? k.slice(0, -3) + '__c' : k + 'Id'] =
                found[0].Id;
        }
        return { fields: out };
    }

    function checkFieldNames(name, fields) {
        const known = objectConf(name).fields;
        if (!known) return null;
        const bad = Object.keys(fields).find((f) => !known.includes(f));
        return bad ? { statusCode: 'INVALID_FIELD', fields: [bad],
                       message: 'No such column \'' + bad + '\' on sobject'
                                + ' of type ' + name } : null;
    }

    // --- uniqueness, duplicate rules, validation rules, types -----------

    function failure(statusCode, message, fields, extra) {
        return Object.assign({ statusCode, message, fields: fields || [] },
                             extra);
    }

    const isBlank = (v) => v === undefined || v === null || v === '';
    // unique indexes and duplicate rules ignore case
    const sameValue = (a, b) => !isBlank(a) && !isBlank(b)
        && String(a).toLowerCase() === String(b).toLowerCase();

    // A group of writes checked together (a collection, a Bulk job):
    // unique values claimed by earlier records count for later ones.
    function newBatch() { return { claims: new Map() }; }

    function uniqueFields(name) {
        const ext = svc.config.unique_external_ids === false ? []
            : objectConf(name).external_ids || [];
        const extra = (svc.config.unique_fields || {})[name] || [];
        return [...new Set([...ext, ...extra])];
    }

    function claimKey(name, field, value) {
        return name + '\0' + field + '\0' + String(value).toLowerCase();
    }

    // Another record holding VALUE in FIELD (not REC), or null.
    function holderOf(name, field, value, rec) {
        const isExt = (objectConf(name).external_ids || []).includes(field);
        const found = isExt ? findByExt(name, field, value)
            : [...table(name).byId.values()].filter((r) =>
                sameValue(r.fields[field], value));
        return found.find((r) => r !== rec) || null;
    }

    function checkUnique(name, rec, fields, batch, owner) {
        for (const field of uniqueFields(name)) {
            const v = fields[field];
            if (isBlank(v) || (rec && sameValue(rec.fields[field], v))) {
                continue;
            }
            const holder = holderOf(name, field, v, rec);
            const claimed = batch.claims.get(claimKey(name, field, v));
            if (holder || (claimed && claimed !== owner)) {
                return failure('DUPLICATE_VALUE', 'duplicate value found: '
                    + field + ' duplicates value on record with id: '
                    + (holder ? holder.Id : '(this request)'), [field]);
            }
        }
        return null;
    }

    function claimUnique(name, fields, batch, owner) {
        for (const field of uniqueFields(name)) {
            if (isBlank(fields[field])) continue;
            batch.claims.set(claimKey(name, field, fields[field]), owner);
        }
    }

    // An active duplicate rule matching on one field exactly (real rules
    // match fuzzily; the error shape is UNCONFIRMED).
    function checkDuplicateRules(name, rec, merged) {
        for (const rule of svc.config.duplicate_rules || []) {
            if (rule.object !== name || rule.active === false) continue;
            const v = merged[rule.field];
            if (isBlank(v) || (rec && sameValue(rec.fields[rule.field], v))) {
                continue;
            }
            const holder = holderOf(name, rule.field, v, rec);
            if (!holder) continue;
            const ruleName = rule.name || 'Standard_' + name
                + '_Duplicate_Rule';
            return failure('DUPLICATES_DETECTED', 'Use one of these records?',
                [], { duplicateResult: {
                    allowSave: false, duplicateRule: ruleName,
                    duplicateRuleEntityType: name,
                    errorMessage: 'Use one of these records?',
                    matchResults: [{ entityType: name, size: 1,
                        matchRecords: [{ record: { Id: holder.Id } }] }],
                } });
        }
        return null;
    }

    function ruleViolation(rule, v) {
        if (rule.required && isBlank(v)) return 'is required';
        if (isBlank(v)) return null;
        if (rule.allowed && !rule.allowed.map(String).includes(String(v))) {
            return 'must be one of ' + rule.allowed.join(', ');
        }
        if (rule.max_length !== undefined
            && String(v).length > Number(rule.max_length)) {
            return 'must be at most ' + rule.max_length + ' characters';
        }
        if (rule.pattern && !rulePattern(rule).test(String(v))) {
            return 'must match ' + rule.pattern;
        }
        return null;
    }

    // A configuration mistake, not a record's: say so plainly.
    function rulePattern(rule) {
        try {
            return new RegExp(rule.pattern);
        } catch (e) {
            throw new HttpError(500, { error: 'validation rule on '
                + rule.field + ': bad pattern: ' + e.message });
        }
    }

    // Rules see the record as it would be saved (stored fields plus the
    // write), like Salesforce's validation rules.
    function checkValidationRules(name, merged) {
        const rules = svc.config.validation_rules || [];
        for (let i = 0; i < rules.length; i++) {
            const rule = rules[i];
            if (rule.object && rule.object !== name) continue;
            const why = ruleViolation(rule, merged[rule.field]);
            if (!why) continue;
            const ruleName = rule.name || name + '_' + rule.field + '_'
                + (i + 1);
            return failure('FIELD_CUSTOM_VALIDATION_EXCEPTION', ruleName
                + ': ' + (rule.message || rule.field + ' ' + why),
                [rule.field]);
        }
        return null;
    }

    function checkLengths(name, fields) {
        const lengths = (svc.config.field_lengths || {})[name] || {};
        for (const [f, max] of Object.entries(lengths)) {
            const v = fields[f];
            if (isBlank(v) || String(v).length <= Number(max)) continue;
            return failure('STRING_TOO_LONG', f + ': data value too large: '
                + String(v).slice(0, 40) + ' (max length=' + max + ')',
                [f]);
        }
        return null;
    }

    // Everything a save checks after the fields are known, in
    // Salesforce's order: system validation, validation rules,
    // duplicate rules, unique indexes.
    function checkWrite(name, rec, fields, batch, owner) {
        const merged = Object.assign({}, rec ? rec.fields : {}, fields);
        return checkLengths(name, fields)
            || checkValidationRules(name, merged)
            || checkDuplicateRules(name, rec, merged)
            || checkUnique(name, rec, fields, batch, owner || rec || {});
    }

    const JSON_TYPES = {
        string: (v) => typeof v === 'string',
        number: (v) => typeof v === 'number',
        boolean: (v) => typeof v === 'boolean',
        date: (v) => typeof v === 'string' && /^\d{4}-\d\d-\d\d$/.test(v),
        datetime: (v) => typeof v === 'string'
            && /^\d{4}-\d\d-\d\dT/.test(v) && !isNaN(Date.parse(v)),
    };

    // A JSON value of the wrong type for a typed field fails the whole
    // call, as Salesforce's deserializer does (message UNCONFIRMED).
    function checkJsonTypes(name, fields) {
        const types = (svc.config.field_types || {})[name] || {};
        for (const [f, type] of Object.entries(types)) {
            const v = fields[f];
            if (v === undefined || v === null || !JSON_TYPES[type]) continue;
            if (JSON_TYPES[type](v)) continue;
            throw sfError(400, 'JSON_PARSER_ERROR', 'Cannot deserialize'
                + ' instance of ' + type + ' from value ' + JSON.stringify(v)
                + ' at [field ' + f + ']', [f]);
        }
    }

    const CSV_TYPES = {
        number: (s) => (/^-?\d+(\.\d+)?$/.test(s) ? Number(s) : undefined),
        boolean: (s) => ({ true: true, false: false, 1: true, 0: false })[
            s.toLowerCase()],
        date: (s) => (JSON_TYPES.date(s) ? s : undefined),
        datetime: (s) => (JSON_TYPES.datetime(s) ? s : undefined),
    };

    // A Bulk CSV cell as a field value: { value } or { error }.
    function fromCsv(name, field, text) {
        const type = ((svc.config.field_types || {})[name] || {})[field];
        const conv = CSV_TYPES[type];
        if (!conv) return { value: text };
        const v = conv(text);
        if (v !== undefined) return { value: v };
        return { error: failure('INVALID_TYPE_ON_FIELD_IN_RECORD', field
            + ': value not of required type: ' + text, [field]) };
    }

    const SYSTEM_FIELDS = ['CreatedDate', 'CreatedById', 'LastModifiedDate',
                           'LastModifiedById', 'SystemModstamp'];

    function readOnlyField(fields) {
        const f = ['Id', ...SYSTEM_FIELDS].find((k) => k in fields);
        return f ? failure('INVALID_FIELD', 'Unable to create/update fields:'
            + ' ' + f + '. Please check the security settings of this'
            + ' field.', [f]) : null;
    }

    // A single call's answer for a failed plan.
    function planError(status, error) {
        const e = { message: error.message, errorCode: error.statusCode,
                    fields: error.fields };
        if (error.duplicateResult) e.duplicateResult = error.duplicateResult;
        return new HttpError(status, [e]);
    }

    // --- injected per-record errors -------------------------------------

    function takeInjected(name, field, value) {
        for (const r of svc.injected) {
            if (r.times === 0 || r.object !== name) continue;
            if (r.field && field && r.field !== field) continue;
            if (extKey(r.value) !== extKey(value)) continue;
            if (r.times > 0) r.times--;
            r.hits++;
            return { status: r.status, statusCode: r.statusCode,
                     message: r.message, fields: r.fields };
        }
        return null;
    }

    // The outcome of one upsert, not yet applied:
    // { rec (null: create), fields } or { error, status }.
    // opts: updateOnly, batch (see newBatch).
    function planUpsert(name, field, value, fields, opts) {
        const fail = (statusCode, message, fs, status) =>
            ({ status: status || 400,
               error: { statusCode, message, fields: fs || [] } });
        const readOnly = readOnlyField(fields);
        if (readOnly) return { status: 400, error: readOnly };
        if (value === undefined || value === null || value === '') {
            return fail('MISSING_ARGUMENT', field + ' not specified',
                        [field]);
        }
        const lookups = resolveLookups(name, fields);
        if (lookups.error) return { status: 400, error: lookups.error };
        fields = lookups.fields;
        const badField = checkFieldNames(name, fields);
        if (badField) return { status: 400, error: badField };
        const injected = takeInjected(name, field, value);
        if (injected) {
            return fail(injected.statusCode, injected.message,
                        injected.fields, injected.status);
        }
        const matches = findByExt(name, field, value);
        if (matches.length > 1) {
            return { status: 300, matches,
                     error: { statusCode: 'DUPLICATE_EXTERNAL_ID',
                              message: 'More than one record found for'
                                       + ' external id field: '
                                       + matches.map((r) => r.Id),
                              fields: [field] } };
        }
        if (!matches.length && opts.updateOnly) {
            return fail('NOT_FOUND', 'The requested resource does not exist',
                        [], 404);
        }
        const create = matches.length === 0;
        const f = Object.assign({}, fields);
        if (create) f[field] = value;
        const rec = matches[0] || null;
        const batch = opts.batch || newBatch();
        const plan = { rec, fields: f };
        const bad = checkWrite(name, rec, f, batch, rec || plan);
        if (bad) return { status: 400, error: bad };
        claimUnique(name, f, batch, rec || plan);
        return plan;
    }

    function upsertOne(ctx) {
        const ver = apiVersion(ctx);
        const { obj, field, value } = ctx.params;
        checkExtField(obj, field);
        const fields = bodyFields(ctx);
        if (field in fields) {
            throw sfError(400, 'INVALID_FIELD', 'The external ID field '
                          + field + ' must not be set in the body',
                          [field]);
        }
        checkJsonTypes(obj, fields);
        const plan = planUpsert(obj, field, value, fields, {
            updateOnly: ctx.query.get('updateOnly') === 'true' });
        if (plan.status === 300) {
            return ok(300, plan.matches.map((r) => '/services/data/v'
                + ver.toFixed(1) + '/sobjects/' + obj + '/' + r.Id));
        }
        if (plan.error) throw planError(plan.status, plan.error);
        const { rec, created } = writeRecord(obj, plan.rec, plan.fields,
                                             'upsert', actorOf(ctx));
        if (created) {
            return ok(201, { id: rec.Id, success: true, errors: [],
                             created: true });
        }
        if (ver < 46.0) return ok(204);
        return ok(200, { id: rec.Id, success: true, errors: [],
                         created: false });
    }

    function collectionPlans(obj, field, records) {
        const batch = newBatch();
        const seen = new Map();
        for (const r of records) {
            const v = r[field];
            if (v === undefined || v === null) continue;
            seen.set(extKey(v), (seen.get(extKey(v)) || 0) + 1);
        }
        return records.map((r) => {
            const fields = Object.assign({}, r);
            delete fields.attributes;
            const value = fields[field];
            delete fields[field];
            if (value !== undefined && seen.get(extKey(value)) > 1) {
                return { error: { statusCode: 'DUPLICATE_EXTERNAL_ID',
                                  message: 'Duplicate external id specified: '
                                           + value,
                                  fields: [field] } };
            }
            return planUpsert(obj, field, value, fields, { batch });
        });
    }

    function checkCollection(ctx, obj) {
        const b = ctx.json();
        if (!b || !Array.isArray(b.records)) {
            throw sfError(400, 'JSON_PARSER_ERROR',
                          'records: an array is required');
        }
        if (b.records.length > COLLECTION_MAX) {
            throw sfError(400, 'EXCEEDED_ID_LIMIT', 'record limit reached.'
                          + ' cannot submit more than 200 records into this'
                          + ' call');
        }
        for (const r of b.records) {
            const type = r && r.attributes && r.attributes.type;
            if (type !== obj) {
                throw sfError(400, 'INVALID_TYPE', 'Each record must have'
                              + ' attributes.type ' + obj);
            }
            checkJsonTypes(obj, r);
        }
        return b;
    }

    function upsertCollection(ctx) {
        const ver = apiVersion(ctx);
        const { obj, field } = ctx.params;
        if (ver < 46.0) {
            throw sfError(404, 'NOT_FOUND',
                          'The requested resource does not exist');
        }
        checkExtField(obj, field);
        const b = checkCollection(ctx, obj);
        const plans = collectionPlans(obj, field, b.records);
        const failed = plans.some((p) => p.error);
        if (b.allOrNone === true && failed) {
            return ok(200, plans.map((p) => ({
                id: null, success: false,
                errors: [p.error || { statusCode: 'ALL_OR_NONE_OPERATION_'
                                                  + 'ROLLED_BACK',
                                      message: ROLLED_BACK, fields: [] }],
            })));
        }
        return ok(200, plans.map((p) => {
            if (p.error) return { id: null, success: false, errors: [p.error] };
            const w = writeRecord(obj, p.rec, p.fields, 'collection',
                                  actorOf(ctx));
            return { id: w.rec.Id, success: true, errors: [],
                     created: w.created };
        }));
    }

    // A platform event goes to svc.events; its SaveResult.
    function publish(name, fields) {
        const uuid = crypto.randomUUID();
        const id = withChecksum(sb.newId('e00', 12));
        svc.events.push({ type: name, uuid, t: Date.now(), fields });
        const errors = svc.config.enqueue_events
            ? [{ statusCode: 'OPERATION_ENQUEUED', message: uuid,
                 fields: [] }] : [];
        return { id, success: true, errors };
    }

    function publishEvent(ctx, name) {
        return ok(201, publish(name, bodyFields(ctx)));
    }

    // One record of a create collection, not yet applied: { type,
    // fields, event? } or { error }.
    function planCreate(r, batch) {
        const type = r && r.attributes && r.attributes.type;
        if (!type) {
            throw sfError(400, 'INVALID_TYPE', 'Each record must have'
                          + ' attributes.type');
        }
        const fields = Object.assign({}, r);
        delete fields.attributes;
        const readOnly = readOnlyField(fields);
        if (readOnly) return { error: readOnly };
        if (type.endsWith('__e')) return { type, fields, event: true };
        if (!svc.config.objects[type]) {
            return { error: failure('INVALID_TYPE', 'sObject type \''
                + type + '\' is not supported.', []) };
        }
        checkJsonTypes(type, fields);
        const lookups = resolveLookups(type, fields);
        if (lookups.error) return { error: lookups.error };
        const bad = checkFieldNames(type, lookups.fields);
        if (bad) return { error: bad };
        const plan = { type, fields: lookups.fields };
        const invalid = checkWrite(type, null, plan.fields, batch, plan);
        if (invalid) return { error: invalid };
        claimUnique(type, plan.fields, batch, plan);
        return plan;
    }

    // POST composite/sobjects: create up to 200 records of any types,
    // platform events included (published; OPERATION_ENQUEUED with
    // enqueue_events), per-record SaveResults in order.
    function createCollection(ctx) {
        const ver = apiVersion(ctx);
        if (ver < 42.0) {
            throw sfError(404, 'NOT_FOUND',
                          'The requested resource does not exist');
        }
        const b = ctx.json();
        if (!b || !Array.isArray(b.records)) {
            throw sfError(400, 'JSON_PARSER_ERROR',
                          'records: an array is required');
        }
        if (b.records.length > COLLECTION_MAX) {
            throw sfError(400, 'EXCEEDED_ID_LIMIT', 'record limit reached.'
                          + ' cannot submit more than 200 records into this'
                          + ' call');
        }
        const batch = newBatch();
        const plans = b.records.map((r) => planCreate(r, batch));
        const failed = plans.some((p) => p.error);
        if (b.allOrNone === true && failed) {
            return ok(200, plans.map((p) => ({
                id: null, success: false,
                errors: [p.error || { statusCode: 'ALL_OR_NONE_OPERATION_'
                                                  + 'ROLLED_BACK',
                                      message: ROLLED_BACK, fields: [] }],
            })));
        }
        return ok(200, plans.map((p) => {
            if (p.error) return { id: null, success: false, errors: [p.error] };
            if (p.event) return publish(p.type, p.fields);
            const w = writeRecord(p.type, null, p.fields, 'collection',
                                  actorOf(ctx));
            return { id: w.rec.Id, success: true, errors: [] };
        }));
    }

    function createRecord(ctx) {
        apiVersion(ctx);
        const obj = ctx.params.obj;
        if (obj.endsWith('__e')) return publishEvent(ctx, obj);
        objectConf(obj);
        const fields = bodyFields(ctx);
        const readOnly = readOnlyField(fields);
        if (readOnly) throw planError(400, readOnly);
        const bad = checkFieldNames(obj, fields);
        if (bad) throw sfError(400, bad.statusCode, bad.message, bad.fields);
        checkJsonTypes(obj, fields);
        const lookups = resolveLookups(obj, fields);
        if (lookups.error) throw planError(400, lookups.error);
        const invalid = checkWrite(obj, null, lookups.fields, newBatch());
        if (invalid) throw planError(400, invalid);
        const { rec } = writeRecord(obj, null, lookups.fields, 'create',
                                    actorOf(ctx));
        return ok(201, { id: rec.Id, success: true, errors: [] });
    }

    function recordOr404(rec) {
        if (!rec) {
            throw sfError(404, 'NOT_FOUND',
                          'The requested resource does not exist');
        }
        return rec;
    }

    function fieldList(ctx) {
        const f = ctx.query.get('fields');
        return f ? f.split(',').map((s) => s.trim()) : null;
    }

    function getById(ctx) {
        const ver = apiVersion(ctx);
        objectConf(ctx.params.obj);
        const rec = recordOr404(findById(ctx.params.obj, ctx.params.id));
        return ok(200, recordView(rec, ver, fieldList(ctx)));
    }

    function getByExt(ctx) {
        const ver = apiVersion(ctx);
        const { obj, field, value } = ctx.params;
        checkExtField(obj, field);
        const matches = findByExt(obj, field, value);
        if (matches.length > 1) {
            return ok(300, matches.map((r) => '/services/data/v'
                + ver.toFixed(1) + '/sobjects/' + obj + '/' + r.Id));
        }
        return ok(200, recordView(recordOr404(matches[0]), ver,
                                  fieldList(ctx)));
    }

    function patchById(ctx) {
        apiVersion(ctx);
        const obj = ctx.params.obj;
        objectConf(obj);
        const rec = recordOr404(findById(obj, ctx.params.id));
        const fields = bodyFields(ctx);
        const injected = takeInjected(obj, null, rec.Id)
            || takeInjected(obj, null, rec.Id.slice(0, 15));
        if (injected) {
            throw sfError(injected.status, injected.statusCode,
                          injected.message, injected.fields);
        }
        const readOnly = readOnlyField(fields);
        if (readOnly) throw planError(400, readOnly);
        checkJsonTypes(obj, fields);
        const invalid = checkWrite(obj, rec, fields, newBatch());
        if (invalid) throw planError(400, invalid);
        writeRecord(obj, rec, fields, 'patch', actorOf(ctx));
        return ok(204);
    }

    function versions() {
        const out = [];
        for (let v = svc.config.min_api_version;
             v <= svc.config.max_api_version; v++) {
            out.push({ label: 'v' + v.toFixed(1), version: v.toFixed(1),
                       url: '/services/data/v' + v.toFixed(1) });
        }
        return ok(200, out);
    }

    function limits(ctx) {
        apiVersion(ctx);
        const max = Number(svc.config.daily_limit);
        return ok(200, { DailyApiRequests: { Max: max,
                                             Remaining: max - svc.apiUsed } });
    }

    const D = '/services/data/:ver';
    svc.routes = [
        ['POST', '/services/oauth2/token', tokenEndpoint],
        ['GET', '/services/data', versions],
        ['GET', D + '/limits', limits],
        ['POST', D + '/sobjects/:obj', createRecord],
        ['GET', D + '/sobjects/:obj/:id', getById],
        ['PATCH', D + '/sobjects/:obj/:id', patchById],
        ['GET', D + '/sobjects/:obj/:field/:value', getByExt],
        ['PATCH', D + '/sobjects/:obj/:field/:value', upsertOne],
        ['PATCH', D + '/composite/sobjects/:obj/:field', upsertCollection],
        ['POST', D + '/composite/sobjects', createCollection],
    ];

    // --- control --------------------------------------------------------

    function badAction(message) {
        return new HttpError(400, { error: message });
    }

    // { object, id | field+value } of an action: the record, or 404
    function actionRecord(input) {
        const name = input.object;
        if (!name || !svc.config.objects[name]) {
            throw badAction('object: a configured object is needed');
        }
        const rec = input.id ? findById(name, input.id)
            : findByExt(name, input.field, input.value)[0];
        if (!rec) throw new HttpError(404, { error: 'no such record' });
        return { name, rec };
    }

    svc.actions = {
        // every issued token stops working: the next call gets 401
        expire_tokens() {
            const n = svc.tokens.size;
            svc.tokens.clear();
            return { expired: n };
        },
        // { object, records: [{fields}] }: straight into the store, so
        // several records may share an external id value (-> 300) and
        // rules are not checked; system fields given set the stamps
        seed(input) {
            const name = input.object;
            if (!name || !svc.config.objects[name]) {
                throw badAction('object: a configured object is needed');
            }
            const crm = svc.userId(svc.config.crm_user);
            const ids = (input.records || []).map((f) => {
                const { fields, stamps } = splitStamps(f);
                return writeRecord(name, null, fields, 'seed', crm,
                                   stamps).rec.Id;
            });
            return { ids };
        },
        // { object, id | field+value, fields, user? }: a person edits the
        // record in the CRM; LastModifiedById is not the integration's
        crm_edit(input) {
            const { name, rec } = actionRecord(input);
            const by = svc.userId(input.user || svc.config.crm_user);
            writeRecord(name, rec, input.fields || {}, 'crm_edit', by);
            return { id: rec.Id, by, SystemModstamp: sfTime(rec.modified) };
        },
        // { object, id | field+value }: a person deletes the record in
        // the CRM (or merges it into another one): it is gone, its
        // external id values are free
        crm_delete(input) {
            const { name, rec } = actionRecord(input);
            const before = rec.fields;
            rec.fields = {};
            reindex(name, rec, before);
            table(name).byId.delete(rec.Id.slice(0, 15));
            return { id: rec.Id };
        },
        // { seconds | ms }: move the record clock forward (SystemModstamp)
        advance_clock(input) {
            svc.clockOffset += Number(input.ms || 0)
                + 1000 * Number(input.seconds || 0);
            return { now: sfTime(svc.now()), offset_ms: svc.clockOffset };
        },
        // { username? }: the user id of a user (default the CRM user)
        user_id(input) {
            const name = input.username || svc.config.crm_user;
            return { username: name, id: svc.userId(name) };
        },
        // { object, value, field?, statusCode, message?, fields?,
        //   status? (single calls, default 400), times? (default 1, -1
        //   forever) }: the next writes to that record fail
        inject_error(input) {
            if (!input.object || input.value === undefined
                || !input.statusCode) {
                throw badAction('object, value and statusCode are needed');
            }
            const rule = {
                id: ++svc.injectSeq, object: input.object,
                field: input.field, value: input.value,
                statusCode: input.statusCode,
                message: input.message || input.statusCode,
                fields: input.fields || [], status: input.status || 400,
                times: input.times === undefined ? 1 : input.times, hits: 0,
            };
            svc.injected.push(rule);
            return { id: rule.id };
        },
        clear_errors() {
            svc.injected = [];
            return {};
        },
        // { used }: jump the daily counter, e.g. next to the budget
        set_api_usage(input) {
            svc.apiUsed = Number(input.used) || 0;
            return { used: svc.apiUsed };
        },
    };

    // Seeded system fields become the record's stamps.
    function splitStamps(f) {
        const fields = Object.assign({}, f);
        const stamps = {};
        const time = (k) => {
            const t = Date.parse(String(fields[k])
                .replace(/([+-]\d\d)(\d\d)$/, '$1:$2'));
            delete fields[k];
            return Number.isNaN(t) ? undefined : t;
        };
        if ('CreatedDate' in fields) stamps.created = time('CreatedDate');
        for (const k of ['LastModifiedDate', 'SystemModstamp']) {
            if (k in fields) stamps.modified = time(k);
        }
        if ('CreatedById' in fields) stamps.createdBy = fields.CreatedById;
        if ('LastModifiedById' in fields) {
            stamps.modifiedBy = fields.LastModifiedById;
        }
        delete fields.CreatedById;
        delete fields.LastModifiedById;
        return { fields, stamps };
    }

    function dumpRecord(rec) {
        return { Id: rec.Id, type: rec.type, fields: rec.fields,
                 created: rec.created, modified: rec.modified,
                 created_by: rec.createdBy, modified_by: rec.modifiedBy,
                 writes: rec.history.length, history: rec.history };
    }

    // /_sandbox/state/salesforce[/records/OBJ[/ID]][?field=F&value=V]
    //                          [/events] [/tokens] [/errors]
    svc.dump = (parts, q) => {
        if (parts[0] === 'records' && parts[1]) {
            const name = parts[1];
            if (parts[2]) {
                const rec = findById(name, parts[2]);
                return rec ? dumpRecord(rec) : {};
            }
            let recs = [...table(name).byId.values()];
            if (q.get('field')) {
                recs = findByExt(name, q.get('field'), q.get('value'));
            }
            return { records: recs.map(dumpRecord) };
        }
        if (parts[0] === 'events') return { events: svc.events };
        if (parts[0] === 'users') {
            return { users: Object.fromEntries(svc.users) };
        }
        for (const e of svc.extensions) {
            const out = e.dump && e.dump(parts, q);
            if (out) return out;
        }
        if (parts[0] === 'errors') return { errors: svc.injected };
        if (parts[0] === 'tokens') {
            return { tokens: [...svc.tokens.values()].map((t) => ({
                grant: t.grant, client: t.client, user: t.user,
                issued: t.issued, expires: t.expires })) };
        }
        const objects = {};
        for (const [name, t] of svc.objects) objects[name] = t.byId.size;
        return {
            api_usage: { used: svc.apiUsed, limit: svc.config.daily_limit },
            tokens: svc.tokens.size, objects, events: svc.events.length,
            errors: svc.injected.length,
        };
    };

    // What sandbox_salesforce_bulk.js and _soql.js build on.
    svc.api = {
        sfError, sfTime, apiVersion, actorOf, objectConf, checkExtField,
        checkFieldNames, table, findById, findByExt, planUpsert,
        writeRecord, checkWrite, claimUnique, newBatch, readOnlyField,
        takeInjected, fromCsv, systemFields, recordView, isBlank,
        SYSTEM_FIELDS,
        newId: (prefix) => withChecksum(sb.newId(prefix, 12)),
    };
    for (const mod of [bulk, soql]) {
        const ext = mod.attach(svc);
        svc.extensions.push(ext);
        ext.reset();
        svc.routes.push(...ext.routes);
    }

    return svc;
}

module.exports = { name: 'salesforce', create, withChecksum };
