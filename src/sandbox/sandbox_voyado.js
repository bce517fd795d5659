'use strict';

// Voyado Engage API (apis.md §15) under /voyado/api/v3 (and the v2 point
// transactions): apikey (or x-api-key) auth, the mandatory
// "System/version" User-Agent, the 500 for a body without a JSON
// content type, 200 requests/s per key, contacts (id lookup, create,
// partial update with a change history per field), immutable receipts
// that earn and reverse points, point accounts and their ledger.  See
// docs/sandbox.md, section "Voyado Engage".

const crypto = require('crypto');
const http = require('http');
const { HttpError, ok } = require('./sandbox_core');

const V3 = '/api/v3';
const V2 = '/api/v2';
const TYPES = ['Member', 'Contact'];
const PREFERENCES = ['acceptsEmail', 'acceptsSms', 'acceptsPostal'];
const MATCH_KEY_TYPES = ['contactId', 'email', 'mobilePhone',
    'memberNumber', 'externalId', 'socialSecurityNumber', 'cardId'];
const MAX_V2_ROWS = 1000;

function defaults() {
    return {
        api_keys: ['voyado_test_key'],
        auth_header: 'any',            // apikey | x-api-key | any
        require_user_agent: true,
        user_agent_status: 400,        // UNCONFIRMED
        rate_limit: 200,               // per second and key
        create_status: 201,            // UNCONFIRMED
        receipt_status: 201,           // UNCONFIRMED
        duplicate_contact_status: 409, // UNCONFIRMED
        duplicate_receipt_status: 409, // UNCONFIRMED
        // contactType change in a PATCH: ignore | reject (400)
        patch_contact_type: 'ignore',
        // the tenant's contact fields; others are ignored silently
        contact_fields: ['firstName', 'lastName', 'email', 'mobilePhone',
            'countryCode', 'externalId', 'memberNumber',
            'socialSecurityNumber', 'cardId', 'birthDay', 'gender',
            'street', 'zipCode', 'city'],
        unique_fields: ['email', 'externalId', 'memberNumber'],
        custom_key_fields: ['memberNumber', 'externalId'],
        point_definition_id: 1,
        points_per_currency_unit: 1,
        // items with "awardsBonus": false earn nothing when true
        honour_awards_bonus: false,
    };
}

const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const PHONE_RE = /^\+?[0-9]{6,15}$/;
const SSN_RE = /^(?:[0-9]{6}|[0-9]{8})[-+]?[0-9]{4}$/;
const UA_RE = /^[^\s/]+\/[^\s/]+/;

const validEmail = (v) => EMAIL_RE.test(String(v));
const validPhone = (v) => PHONE_RE.test(String(v).replace(/[\s-]/g, ''));
const validSsn = (v) => SSN_RE.test(String(v));

function isoNow() { return new Date().toISOString(); }

function errorBody(status, code, message) {
    return { statusCode: status, errorCode: code, message };
}

function codeFor(status) {
    return (http.STATUS_CODES[status] || 'Error').replace(/[^A-Za-z]/g, '');
}

function create(sb) {
    const svc = {
        name: 'voyado',
        prefix: '/voyado',
        config: defaults(),
    };
    let st;

    svc.reset = () => {
        st = {
            contacts: new Map(),   // id -> contact
            receipts: new Map(),   // uniqueReceiptId -> receipt
            accounts: new Map(),   // account id -> account
            transactions: [],      // oldest first
            // lookups stay O(1) with many contacts (benchmarks)
            index: new Map(),      // field \0 lower-cased value -> Set
            contactAccounts: new Map(),   // contact id -> [account]
            accountTxs: new Map(),        // account id -> [transaction]
            nextAccount: 1,
            nextTx: 1,
            historySeq: 0,
        };
    };
    svc.reset();

    svc.error = (status, message, code) => new HttpError(status,
        errorBody(status, code || codeFor(status), message));

    svc.faultBody = (status) => errorBody(status, codeFor(status),
        http.STATUS_CODES[status] || 'Error');

    // --- request rules --------------------------------------------------

    function apiKey(ctx) {
        const how = svc.config.auth_header;
        if (how === 'apikey') return ctx.headers.apikey;
        if (how === 'x-api-key') return ctx.headers['x-api-key'];
        return ctx.headers.apikey || ctx.headers['x-api-key'];
    }

    svc.limit = (ctx) => {
        const key = 'voyado:' + (apiKey(ctx) || '-');
        if (!sb.limiter.take(key, svc.config.rate_limit, 1000).ok) {
            throw svc.error(429, 'Too many requests', 'TooManyRequests');
        }
    };

    svc.auth = (ctx) => {
        const key = apiKey(ctx);
        if (!key || !(svc.config.api_keys || []).includes(key)) {
            throw svc.error(401, 'Invalid or missing API key',
                            'Unauthorized');
        }
        if (svc.config.require_user_agent
            && !UA_RE.test(ctx.headers['user-agent'] || '')) {
            throw svc.error(svc.config.user_agent_status,
                            'User-Agent must be System/version',
                            'InvalidUserAgent');
        }
        // documented: Engage answers 500 to a body it cannot read as JSON
        const ct = ctx.headers['content-type'] || '';
        if (ctx.body.length && !/^application\/json\b/i.test(ct)) {
            throw new HttpError(500, { Message: 'An error has occurred.' });
        }
        return { key };
    };

    // --- contacts -------------------------------------------------------

    function normType(t) {
        if (t === undefined || t === null || t === '') return 'Member';
        return TYPES.find((x) => x.toLowerCase() === String(t).toLowerCase())
            || null;
    }

    function record(c, op, field, from, to) {
        c.history.push({ seq: ++st.historySeq, at: isoNow(), op, field,
                         from: from === undefined ? null : from,
                         to: to === undefined ? null : to });
    }

    function validateField(field, v) {
        if (v === null || v === '') return;
        if (field === 'email' && !validEmail(v)) {
            throw svc.error(400, 'Invalid email address',
                            'InvalidEmailAddress');
        }
        if (field === 'mobilePhone' && !validPhone(v)) {
            throw svc.error(400, 'Invalid phone number',
                            'InvalidPhoneNumber');
        }
        if (field === 'socialSecurityNumber' && !validSsn(v)) {
            throw svc.error(400, 'Invalid social security number',
                            'InvalidSocialSecurityNumber');
        }
    }

    function indexKey(field, value) {
        return field + '\0' + String(value).toLowerCase();
    }

    // Sets a field and keeps the lookup index right.
    function setField(c, field, value) {
        const old = c.fields[field];
        if (old !== undefined && old !== null) {
            const set = st.index.get(indexKey(field, old));
            if (set) set.delete(c);
        }
        c.fields[field] = value;
        if (value === undefined || value === null) return;
        const k = indexKey(field, value);
        if (!st.index.has(k)) st.index.set(k, new Set());
        st.index.get(k).add(c);
    }

    // Contacts whose FIELD equals VALUE, ignoring case.
    function contactsWhere(field, value, type) {
        let all;
        if (field === 'contactId') {
            const c = st.contacts.get(value);
            all = c ? [c] : [];
        } else {
            all = [...(st.index.get(indexKey(field, value)) || [])];
        }
        return type ? all.filter((c) => c.contactType === type) : all;
    }

    function checkUnique(c, field, value) {
        if (!(svc.config.unique_fields || []).includes(field)) return;
        if (value === null || value === '' || value === undefined) return;
        const others = contactsWhere(field, value, c.contactType)
            .filter((x) => x !== c);
        if (others.length) {
            throw svc.error(svc.config.duplicate_contact_status,
                            'A contact with this ' + field + ' exists',
                            'ContactAlreadyExists');
        }
    }

    function accountsOfContact(contactId) {
        return st.contactAccounts.get(contactId) || [];
    }

    function ensureAccount(contactId, definitionId) {
        const mine = accountsOfContact(contactId);
        const found = mine.find((a) => a.definitionId === definitionId);
        if (found) return found;
        const a = { id: st.nextAccount++, contactId, definitionId,
                    balance: 0, balanceExpires: null, pendingPoints: 0 };
        st.accounts.set(a.id, a);
        st.contactAccounts.set(contactId, mine.concat([a]));
        st.accountTxs.set(a.id, []);
        return a;
    }

    // A new contact from INPUT; seeding skips validation and uniqueness.
    function newContact(input, meta, seeding) {
        const type = normType(input.contactType);
        if (!type) {
            throw svc.error(400, 'Invalid contact type',
                            'InvalidContactType');
        }
        const now = isoNow();
        const c = { id: input.id || crypto.randomUUID(), contactType: type,
                    fields: {}, preferences: {}, createdOn: now,
                    lastModified: now, meta, history: [] };
        for (const f of svc.config.contact_fields) {
            if (input[f] === undefined) continue;
            if (!seeding) {
                validateField(f, input[f]);
                checkUnique(c, f, input[f]);
            }
        }
        for (const f of svc.config.contact_fields) {
            if (input[f] === undefined) continue;
            setField(c, f, input[f]);
            record(c, 'create', f, undefined, input[f]);
        }
        const prefs = input.preferences || {};
        for (const p of PREFERENCES) {
            c.preferences[p] = prefs[p] === undefined ? false : prefs[p];
            if (prefs[p] !== undefined) {
                record(c, 'create', 'preferences.' + p, undefined, prefs[p]);
            }
        }
        st.contacts.set(c.id, c);
        if (type === 'Member') {
            ensureAccount(c.id, svc.config.point_definition_id);
        }
        return c;
    }

    function contactView(c) {
        return Object.assign({ id: c.id, contactType: c.contactType },
            c.fields, { preferences: Object.assign({}, c.preferences),
                        createdOn: c.createdOn,
                        lastModified: c.lastModified });
    }

    function contactOr404(id) {
        const c = st.contacts.get(id);
        if (!c) throw svc.error(404, 'Contact not found', 'ContactNotFound');
        return c;
    }

    // `any` tries email, SSN, mobile, customKey: the first that validates
    function searchFor(q) {
        if (q.has('email')) {
            if (!validEmail(q.get('email'))) {
                throw svc.error(400, 'Invalid email address',
                                'InvalidEmailAddress');
            }
            return [['email', q.get('email')]];
        }
        if (q.has('mobilePhone')) {
            if (!validPhone(q.get('mobilePhone'))) {
                throw svc.error(400, 'Invalid phone number',
                                'InvalidPhoneNumber');
            }
            return [['mobilePhone', q.get('mobilePhone')]];
        }
        if (q.has('socialSecurityNumber')) {
            if (!validSsn(q.get('socialSecurityNumber'))) {
                throw svc.error(400, 'Invalid social security number',
                                'InvalidSocialSecurityNumber');
            }
            return [['socialSecurityNumber', q.get('socialSecurityNumber')]];
        }
        const keys = svc.config.custom_key_fields;
        if (q.has('customKey') && q.get('customKey') !== '') {
            return keys.map((f) => [f, q.get('customKey')]);
        }
        const any = q.get('any');
        if (any) {
            if (validEmail(any)) return [['email', any]];
            if (validSsn(any)) return [['socialSecurityNumber', any]];
            if (validPhone(any)) return [['mobilePhone', any]];
            return keys.map((f) => [f, any]);
        }
        throw svc.error(400, 'No valid search parameter',
                        'InvalidSearchQuery');
    }

    function findContactId(ctx) {
        const q = ctx.query;
        let type = null;
        if (q.has('contactType')) {
            type = normType(q.get('contactType'));
            if (!type) {
                throw svc.error(400, 'Invalid contact type',
                                'InvalidContactType');
            }
        }
        const found = new Set();
        for (const [field, value] of searchFor(q)) {
            for (const c of contactsWhere(field, value, type)) found.add(c);
        }
        if (found.size === 0) {
            throw svc.error(404, 'Contact not found', 'ContactNotFound');
        }
        if (found.size > 1) {
            throw svc.error(409, 'More than one contact matches',
                            'MultipleMatches');
        }
        // the body is the GUID as a JSON string
        return ok(200, JSON.stringify([...found][0].id),
                  { 'Content-Type': 'application/json; charset=utf-8' });
    }

    function jsonObject(ctx) {
        const b = ctx.json();
        if (!b || typeof b !== 'object' || Array.isArray(b)) {
            throw svc.error(400, 'The body must be a JSON object',
                            'InvalidRequest');
        }
        return b;
    }

    function createContact(ctx) {
        const b = jsonObject(ctx);
        const q = ctx.query;
        const c = newContact(b, {
            source: q.get('source'),
            storeExternalId: q.get('storeExternalId'),
            createAsUnapproved: q.get('createAsUnapproved') === 'true',
        }, false);
        return ok(svc.config.create_status, contactView(c));
    }

    // Only the fields present change; null or "" overwrites; unknown
    // fields are ignored; contactType cannot change.
    function patchContact(ctx) {
        const c = contactOr404(ctx.params.id);
        const b = jsonObject(ctx);
        if (b.contactType !== undefined
            && normType(b.contactType) !== c.contactType
            && svc.config.patch_contact_type === 'reject') {
            throw svc.error(400, 'contactType cannot be changed',
                            'ContactTypeCannotBeChanged');
        }
        // in the body's order, so the history shows the order written
        const fields = Object.keys(b)
            .filter((f) => svc.config.contact_fields.includes(f));
        for (const f of fields) {
            validateField(f, b[f]);
            checkUnique(c, f, b[f]);
        }
        for (const f of fields) {
            record(c, 'patch', f, c.fields[f], b[f]);
            setField(c, f, b[f]);
        }
        const prefs = b.preferences && typeof b.preferences === 'object'
            ? b.preferences : {};
        for (const p of PREFERENCES) {
            if (prefs[p] === undefined) continue;
            record(c, 'patch', 'preferences.' + p, c.preferences[p],
                   prefs[p]);
            c.preferences[p] = prefs[p];
        }
        c.lastModified = isoNow();
        return ok(200, contactView(c));
    }

    // the one way to change a contact's type
    function updateContactType(ctx) {
        const c = contactOr404(ctx.params.id);
        const type = normType(ctx.query.get('contactTypeId') || 'x');
        if (!type) {
            throw svc.error(400, 'Invalid contact type',
                            'InvalidContactType');
        }
        record(c, 'updateContactType', 'contactType', c.contactType, type);
        c.contactType = type;
        c.lastModified = isoNow();
        return ok(200, contactView(c));
    }

    // --- points ---------------------------------------------------------

    function addTransaction(contactId, row) {
        const defId = row.definitionId || svc.config.point_definition_id;
        const a = ensureAccount(contactId, defId);
        const now = isoNow();
        const t = {
            id: st.nextTx++, accountId: a.id, contactId,
            definitionId: defId, amount: row.amount,
            type: row.amount < 0 ? 'Deduction' : 'Addition',
            source: row.source, description: row.description,
            timeStamp: row.timeStamp || now, validFrom: row.validFrom || now,
            validTo: row.validTo || null, sourceId: row.sourceId || null,
        };
        st.transactions.push(t);
        st.accountTxs.get(a.id).push(t);
        a.balance += row.amount;
        return t;
    }

    function accountsOf(ctx) {
        const id = ctx.query.get('contactId');
        if (!id) {
            throw svc.error(400, 'contactId is required',
                            'InvalidSearchQuery');
        }
        contactOr404(id);
        return ok(200, accountsOfContact(id));
    }

    function accountFor(q) {
        if (q.has('accountId')) {
            const a = st.accounts.get(Number(q.get('accountId')));
            if (!a) {
                throw svc.error(404, 'Point account not found',
                                'PointAccountNotFound');
            }
            return a;
        }
        if (q.has('contactId') && q.has('definitionId')) {
            contactOr404(q.get('contactId'));
            return ensureAccount(q.get('contactId'),
                                 Number(q.get('definitionId')));
        }
        throw svc.error(400, 'accountId or contactId and definitionId'
                        + ' are required', 'InvalidSearchQuery');
    }

    // newest first; no pending points are emulated
    function transactionsOf(ctx) {
        const q = ctx.query;
        const a = accountFor(q);
        const offset = Number(q.get('offset') || 0);
        const count = Number(q.get('count') || 100);
        const all = q.get('filter') === 'Pending' ? []
            : st.accountTxs.get(a.id).slice().reverse();
        return ok(200, {
            items: all.slice(offset, offset + count),
            totalCount: all.length, offset, count, links: [],
        });
    }

    function v2Row(row, i) {
        const fail = (why) => ({ index: i, message: why });
        if (!row || typeof row !== 'object') return fail('not an object');
        if (!row.contactId || !st.contacts.has(row.contactId)) {
            return fail('unknown contactId');
        }
        if (typeof row.amount !== 'number' || row.amount === 0) {
            return fail('amount must be a non-zero number');
        }
        if (!row.source) return fail('source is required');
        if (!row.description) return fail('description is required');
        return null;
    }

    // all rows or none (the real per-row behaviour is UNCONFIRMED)
    function v2Transactions(ctx) {
        const rows = ctx.json();
        if (!Array.isArray(rows) || rows.length === 0
            || rows.length > MAX_V2_ROWS) {
            throw svc.error(400, 'The body must be an array of 1..'
                            + MAX_V2_ROWS + ' rows', 'InvalidRequest');
        }
        const errors = rows.map(v2Row).filter(Boolean);
        if (errors.length) {
            throw new HttpError(400, Object.assign(errorBody(400,
                'InvalidTransactions', 'Some rows are invalid'), { errors }));
        }
        return ok(200, rows.map((r) => addTransaction(r.contactId, r)));
    }

    // --- receipts -------------------------------------------------------

    function receiptContact(k) {
        if (!k || !k.matchKey || !k.matchKeyType) {
            throw svc.error(400, 'contact.matchKey and matchKeyType are'
                            + ' required', 'InvalidRequest');
        }
        if (!MATCH_KEY_TYPES.includes(k.matchKeyType)) {
            throw svc.error(400, 'Invalid matchKeyType',
                            'InvalidMatchKeyType');
        }
        const type = k.contactType ? normType(k.contactType) : null;
        const found = contactsWhere(k.matchKeyType, k.matchKey, type);
        if (found.length === 0) {
            throw svc.error(404, 'Contact not found', 'ContactNotFound');
        }
        if (found.length > 1) {
            throw svc.error(409, 'More than one contact matches',
                            'MultipleMatches');
        }
        return found[0];
    }

    function receiptPoints(items) {
        const rate = svc.config.points_per_currency_unit;
        let earned = 0;
        let returned = 0;
        for (const it of items) {
            if (svc.config.honour_awards_bonus && it.awardsBonus === false) {
                continue;
            }
            const value = Math.abs(Number(it.grossPaidPrice) || 0);
            const type = String(it.type || '').toUpperCase();
            if (type === 'PURCHASE') earned += value;
            if (type === 'RETURN') returned += value;
        }
        return { earned: Math.floor(earned * rate),
                 returned: Math.floor(returned * rate) };
    }

    function createReceipt(ctx) {
        const b = jsonObject(ctx);
        if (!b.uniqueReceiptId) {
            throw svc.error(400, 'uniqueReceiptId is required',
                            'InvalidRequest');
        }
        if (!Array.isArray(b.items) || b.items.length === 0) {
            throw svc.error(400, 'items are required', 'InvalidRequest');
        }
        const id = String(b.uniqueReceiptId);
        if (st.receipts.has(id)) {
            throw svc.error(svc.config.duplicate_receipt_status,
                            'Receipt already registered',
                            'ReceiptAlreadyExists');
        }
        const c = receiptContact(b.contact);
        const pts = receiptPoints(b.items);
        const r = { uniqueReceiptId: id, contactId: c.id, receipt: b,
                    pointsEarned: pts.earned, pointsReturned: pts.returned,
                    at: isoNow() };
        st.receipts.set(id, r);
        const what = 'Receipt ' + (b.receiptNumber || id);
        if (pts.earned) {
            addTransaction(c.id, { amount: pts.earned, source: 'Receipt',
                                   description: what, sourceId: id });
        }
        if (pts.returned) {
            addTransaction(c.id, { amount: -pts.returned, source: 'Receipt',
                                   description: 'Return, ' + what,
                                   sourceId: id });
        }
        return ok(svc.config.receipt_status);
    }

    svc.routes = [
        ['GET', V3 + '/contacts/id', findContactId],
        ['POST', V3 + '/contacts', createContact],
        ['GET', V3 + '/contacts/:id', (ctx) =>
            ok(200, contactView(contactOr404(ctx.params.id)))],
        ['PATCH', V3 + '/contacts/:id', patchContact],
        ['POST', V3 + '/contacts/:id/updateContactType', updateContactType],
        ['POST', V3 + '/receipts', createReceipt],
        ['GET', V3 + '/point-accounts', accountsOf],
        ['GET', V3 + '/point-transactions', transactionsOf],
        ['POST', V2 + '/point-accounts/transactions', v2Transactions],
    ];

    // --- control API ----------------------------------------------------

    svc.actions = {
        // {"contacts":[{email, firstName, contactType, points, ...}]} or
        // one; no uniqueness check, so duplicates (409 MultipleMatches)
        // can be made on purpose
        contact(input) {
            const list = input.contacts || [input];
            return { contacts: list.map((x) => {
                const c = newContact(x, { source: 'seed' }, true);
                if (x.points) {
                    addTransaction(c.id, { amount: x.points,
                        source: 'Seed', description: 'Seeded balance' });
                }
                return contactView(c);
            }) };
        },
        defaults() {
            for (const k of Object.keys(svc.config)) delete svc.config[k];
            Object.assign(svc.config, defaults());
            return svc.config;
        },
    };

    function contactState(c) {
        return Object.assign(contactView(c), {
            meta: c.meta,
            history: c.history,
            point_accounts: accountsOfContact(c.id),
            point_transactions: accountsOfContact(c.id)
                .flatMap((a) => st.accountTxs.get(a.id))
                .sort((x, y) => x.id - y.id),
            receipts: [...st.receipts.values()]
                .filter((r) => r.contactId === c.id)
                .map((r) => r.uniqueReceiptId),
        });
    }

    // /_sandbox/state/voyado                  everything
    // /_sandbox/state/voyado/contacts/ID      one contact with history
    // /_sandbox/state/voyado/contact?email=   the same by e-mail
    // /_sandbox/state/voyado/receipts/ID      one receipt as received
    svc.dump = (parts, q) => {
        if (parts[0] === 'contacts' && parts[1]) {
            const c = st.contacts.get(parts[1]);
            return c ? contactState(c) : {};
        }
        if (parts[0] === 'contact') {
            const c = contactsWhere('email', q.get('email') || '', null)[0];
            return c ? contactState(c) : {};
        }
        if (parts[0] === 'receipts' && parts[1]) {
            return st.receipts.get(parts[1]) || {};
        }
        return {
            contacts: [...st.contacts.values()].map(contactState),
            receipts: [...st.receipts.keys()],
            point_transactions: st.transactions.length,
        };
    };

    return svc;
}

module.exports = { name: 'voyado', create };
