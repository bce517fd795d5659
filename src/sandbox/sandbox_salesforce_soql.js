'use strict';

// SOQL for the Salesforce emulation (docs/sandbox.md): GET
// /services/data/vXX.X/query?q=... and /queryAll, with the subset the
// worker's scheduled pull uses (one object, a field list, AND-ed
// comparisons, IN, LIKE, ORDER BY, LIMIT) and cursor pagination through
// nextRecordsUrl.  Anything else is refused the way Salesforce refuses
// a query it cannot parse: 400 with its array error body.

const { HttpError, ok } = require('./sandbox_core');

const DATETIME_FIELDS = ['CreatedDate', 'LastModifiedDate',
                         'SystemModstamp'];
const ID_FIELDS = ['Id', 'CreatedById', 'LastModifiedById'];
const CURSORS_MAX = 1000;

function queryError(errorCode, message) {
    return new HttpError(400, [{ message, errorCode }]);
}

function malformed(message) {
    return queryError('MALFORMED_QUERY', message);
}

// --- tokens -----------------------------------------------------------

const ESCAPES = { n: '\n', t: '\t', r: '\r', b: '\b', f: '\f', '"': '"',
                  '\'': '\'', '\\': '\\', _: '\\_', '%': '\\%' };

// A quoted string from position i: -> [value, next position].  \_ and
// \% stay escaped for LIKE.
function readString(q, i) {
    let out = '';
    for (let j = i + 1; j < q.length; j++) {
        const c = q[j];
        if (c === '\'') return [out, j + 1];
        if (c !== '\\') { out += c; continue; }
        const e = ESCAPES[q[j + 1]];
        if (e === undefined) {
            throw malformed('Invalid string literal: bad escape \\'
                            + q[j + 1]);
        }
        out += e;
        j++;
    }
    throw malformed('unterminated string literal');
}

const TOKEN_RES = [
    ['datetime',
     /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?(Z|[+-]\d\d:\d\d)/],
    ['date', /^\d{4}-\d\d-\d\d(?![\dT])/],
    ['number', /^-?\d+(\.\d+)?(?![\w.])/],
    ['word', /^[A-Za-z_][A-Za-z0-9_.]*/],
    ['op', /^(<=|>=|!=|<>|=|<|>)/],
    ['punct', /^[,()]/],
];

function tokenize(q) {
    const out = [];
    let i = 0;
    while (i < q.length) {
        if (/\s/.test(q[i])) { i++; continue; }
        if (q[i] === '\'') {
            const [value, next] = readString(q, i);
            out.push({ type: 'string', value, pos: i });
            i = next;
            continue;
        }
        const rest = q.slice(i);
        const hit = TOKEN_RES.find(([, re]) => re.test(rest));
        if (!hit) {
            throw malformed('ERROR at Row:1:Column:' + (i + 1)
                            + '\nunexpected token: \'' + q[i] + '\'');
        }
        const text = hit[1].exec(rest)[0];
        out.push({ type: hit[0], value: text, pos: i });
        i += text.length;
    }
    return out;
}

// --- parser -----------------------------------------------------------

class Parser {
    constructor(q) { this.toks = tokenize(q); this.i = 0; }

    peek() { return this.toks[this.i]; }

    isWord(w) {
        const t = this.peek();
        return t && t.type === 'word' && t.value.toUpperCase() === w;
    }

    unexpected() {
        const t = this.peek();
        if (!t) return malformed('unexpected end of query');
        return malformed('ERROR at Row:1:Column:' + (t.pos + 1)
                         + '\nunexpected token: \'' + t.value + '\'');
    }

    expectWord(w) {
        if (!this.isWord(w)) throw this.unexpected();
        this.i++;
    }

    take(type, value) {
        const t = this.peek();
        if (!t || t.type !== type || (value && t.value !== value)) {
            throw this.unexpected();
        }
        this.i++;
        return t;
    }

    fieldName() {
        const t = this.take('word');
        if (t.value.includes('.')) {
            throw malformed('relationship fields are not supported by the'
                            + ' sandbox: ' + t.value);
        }
        if (this.peek() && this.peek().value === '(') {
            throw malformed('functions are not supported by the sandbox: '
                            + t.value + '()');
        }
        return t.value;
    }

    // -> { fields, object, where: [cond], order: [key], limit }
    query() {
        this.expectWord('SELECT');
        const fields = [this.fieldName()];
        while (this.peek() && this.peek().value === ',') {
            this.i++;
            fields.push(this.fieldName());
        }
        this.expectWord('FROM');
        const object = this.take('word').value;
        const where = [];
        if (this.isWord('WHERE')) {
            this.i++;
            where.push(this.condition());
            while (this.isWord('AND')) {
                this.i++;
                where.push(this.condition());
            }
            if (this.isWord('OR')) {
                throw malformed('OR is not supported by the sandbox');
            }
        }
        const order = this.isWord('ORDER') ? this.orderBy() : [];
        let limit = null;
        if (this.isWord('LIMIT')) {
            this.i++;
            const n = this.take('number').value;
            if (!/^\d+$/.test(n)) throw malformed('LIMIT must be an integer');
            limit = Number(n);
        }
        if (this.peek()) throw this.unexpected();
        return { fields, object, where, order, limit };
    }

    literal() {
        const t = this.peek();
        if (!t) throw this.unexpected();
        this.i++;
        if (t.type === 'string') return { type: 'string', value: t.value };
        if (t.type === 'datetime') {
            return { type: 'datetime', value: Date.parse(t.value),
                     text: t.value };
        }
        if (t.type === 'date') return { type: 'date', value: t.value };
        if (t.type === 'number') {
            return { type: 'number', value: Number(t.value) };
        }
        const w = t.type === 'word' ? t.value.toLowerCase() : '';
        if (w === 'null') return { type: 'null', value: null };
        if (w === 'true' || w === 'false') {
            return { type: 'boolean', value: w === 'true' };
        }
        this.i--;
        throw this.unexpected();
    }

    condition() {
        if (this.peek() && this.peek().value === '(') {
            throw malformed('parenthesised conditions are not supported by'
                            + ' the sandbox');
        }
        const field = this.fieldName();
        let op;
        if (this.isWord('NOT')) {
            this.i++;
            this.expectWord('IN');
            op = 'NOT IN';
        } else if (this.isWord('IN')) {
            this.i++;
            op = 'IN';
        } else if (this.isWord('LIKE')) {
            this.i++;
            op = 'LIKE';
        } else {
            op = this.take('op').value;
            if (op === '<>') op = '!=';
        }
        if (op !== 'IN' && op !== 'NOT IN') {
            return { field, op, value: this.literal() };
        }
        this.take('punct', '(');
        const values = [this.literal()];
        while (this.peek() && this.peek().value === ',') {
            this.i++;
            values.push(this.literal());
        }
        this.take('punct', ')');
        return { field, op, values };
    }

    orderBy() {
        this.expectWord('ORDER');
        this.expectWord('BY');
        const keys = [];
        do {
            if (keys.length) this.i++;
            const key = { field: this.fieldName(), desc: false };
            if (this.isWord('ASC') || this.isWord('DESC')) {
                key.desc = this.isWord('DESC');
                this.i++;
            }
            key.nullsLast = key.desc;
            if (this.isWord('NULLS')) {
                this.i++;
                key.nullsLast = this.isWord('LAST');
                if (!this.isWord('LAST') && !this.isWord('FIRST')) {
                    throw this.unexpected();
                }
                this.i++;
            }
            keys.push(key);
        } while (this.peek() && this.peek().value === ',');
        return keys;
    }
}

// --- evaluation ---------------------------------------------------------

function likeToRegExp(pattern) {
    let re = '';
    for (let i = 0; i < pattern.length; i++) {
        const c = pattern[i];
        if (c === '\\' && (pattern[i + 1] === '_' || pattern[i + 1] === '%')) {
            re += pattern[++i];
        } else if (c === '%') {
            re += '.*';
        } else if (c === '_') {
            re += '.';
        } else {
            re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        }
    }
    return new RegExp('^' + re + '$', 'is');
}

// Ids compare on their 15 case-sensitive characters, text ignores case.
function comparable(kind, v) {
    if (v === null || v === undefined) return null;
    if (kind === 'id') return String(v).slice(0, 15);
    if (typeof v === 'string') return v.toLowerCase();
    return v;
}

function compare(a, b) {
    if (a === b) return 0;
    return a < b ? -1 : 1;
}

function attach(svc) {
    const api = svc.api;
    const ext = { routes: [] };

    ext.reset = () => { ext.cursors = new Map(); };

    // The record fields a query may name, by lower-case name.
    function fieldCatalog(name, recs) {
        const cat = new Map();
        const add = (f) => {
            if (!cat.has(f.toLowerCase())) cat.set(f.toLowerCase(), f);
        };
        ['Id', ...api.SYSTEM_FIELDS].forEach(add);
        const conf = api.objectConf(name);
        (conf.external_ids || []).forEach(add);
        if (conf.fields) {
            conf.fields.forEach(add);
            return { cat, open: false };
        }
        Object.keys((svc.config.field_types || {})[name] || {}).forEach(add);
        for (const r of recs) Object.keys(r.fields).forEach(add);
        return { cat, open: true };
    }

    function resolver(name, recs) {
        const { cat, open } = fieldCatalog(name, recs);
        return (f) => {
            const known = cat.get(f.toLowerCase());
            if (known) return known;
            if (open) return f;
            throw queryError('INVALID_FIELD', 'No such column \'' + f
                + '\' on entity \'' + name + '\'. If you are attempting to'
                + ' use a custom field, be sure to append the \'__c\' after'
                + ' the custom field name.');
        };
    }

    function kindOf(name, field) {
        if (ID_FIELDS.includes(field)) return 'id';
        if (DATETIME_FIELDS.includes(field)) return 'datetime';
        const t = ((svc.config.field_types || {})[name] || {})[field];
        return t === 'datetime' ? 'datetime' : 'plain';
    }

    function valueOf(rec, field) {
        if (field === 'Id') return rec.Id;
        if (field === 'CreatedDate') return rec.created;
        if (field === 'LastModifiedDate' || field === 'SystemModstamp') {
            return rec.modified;
        }
        if (field === 'CreatedById') return rec.createdBy;
        if (field === 'LastModifiedById') return rec.modifiedBy;
        const v = rec.fields[field];
        return v === undefined ? null : v;
    }

    function checkLiteral(name, cond, lit) {
        const kind = kindOf(name, cond.field);
        if (lit.type === 'null') return;
        if (kind === 'datetime' && lit.type !== 'datetime') {
            throw queryError('INVALID_FIELD', 'value of filter criterion for'
                + ' field \'' + cond.field + '\' must be of type dateTime'
                + ' and should not be enclosed in quotes');
        }
        if (kind === 'id' && (lit.type !== 'string'
            || !/^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$/.test(lit.value))) {
            throw queryError('INVALID_QUERY_FILTER_OPERATOR',
                             'invalid ID field: ' + lit.value);
        }
    }

    function literalValue(name, field, lit) {
        const v = lit.type === 'datetime' && kindOf(name, field) !== 'datetime'
            ? lit.text : lit.value;
        return comparable(kindOf(name, field), v);
    }

    function recordValue(name, rec, field) {
        const kind = kindOf(name, field);
        let v = valueOf(rec, field);
        if (kind === 'datetime' && typeof v === 'string') v = Date.parse(v);
        return comparable(kind, v);
    }

    function matches(name, rec, cond) {
        const a = recordValue(name, rec, cond.field);
        if (cond.op === 'IN' || cond.op === 'NOT IN') {
            const hit = cond.values.some((l) =>
                a !== null && a === literalValue(name, cond.field, l));
            return cond.op === 'IN' ? hit : !hit;
        }
        const b = literalValue(name, cond.field, cond.value);
        if (cond.op === 'LIKE') {
            return a !== null && likeToRegExp(String(cond.value.value))
                .test(String(valueOf(rec, cond.field)));
        }
        // null only equals null; != keeps nulls (UNCONFIRMED)
        if (a === null || b === null) {
            if (cond.op === '=') return a === b;
            if (cond.op === '!=') return a !== b;
            return false;
        }
        const c = compare(a, b);
        return { '=': c === 0, '!=': c !== 0, '<': c < 0, '<=': c <= 0,
                 '>': c > 0, '>=': c >= 0 }[cond.op];
    }

    function sorter(name, keys) {
        return (x, y) => {
            for (const k of keys) {
                const a = recordValue(name, x, k.field);
                const b = recordValue(name, y, k.field);
                if (a === b) continue;
                if (a === null) return k.nullsLast ? 1 : -1;
                if (b === null) return k.nullsLast ? -1 : 1;
                const c = compare(a, b);
                if (c) return k.desc ? -c : c;
            }
            return 0;
        };
    }

    function render(name, rec, fields, ver) {
        const out = { attributes: { type: name, url: '/services/data/v'
            + ver.toFixed(1) + '/sobjects/' + name + '/' + rec.Id } };
        for (const f of fields) {
            const v = valueOf(rec, f);
            out[f] = kindOf(name, f) === 'datetime' && typeof v === 'number'
                ? api.sfTime(v) : v;
        }
        return out;
    }

    // Parses, checks and runs a query: the rendered records.
    function execute(q, ver) {
        const parsed = new Parser(q).query();
        const name = parsed.object;
        if (!svc.config.objects[name]) {
            throw queryError('INVALID_TYPE', 'sObject type \'' + name
                + '\' is not supported. If you are attempting to use a'
                + ' custom object, be sure to append the \'__c\' after the'
                + ' entity name.');
        }
        const recs = [...api.table(name).byId.values()];
        const canon = resolver(name, recs);
        const fields = [...new Set(parsed.fields.map(canon))];
        for (const c of parsed.where) {
            c.field = canon(c.field);
            (c.values || [c.value]).forEach((l) => checkLiteral(name, c, l));
        }
        parsed.order.forEach((k) => { k.field = canon(k.field); });
        let out = recs.filter((r) =>
            parsed.where.every((c) => matches(name, r, c)));
        if (parsed.order.length) out.sort(sorter(name, parsed.order));
        if (parsed.limit !== null) out = out.slice(0, parsed.limit);
        return out.map((r) => render(name, r, fields, ver));
    }

    // Sforce-Query-Options: batchSize=N (200..2000), else the config.
    function batchSize(ctx) {
        const m = /batchSize=(\d+)/.exec(ctx.headers['sforce-query-options']
                                         || '');
        if (m) return Math.min(2000, Math.max(200, Number(m[1])));
        return Math.max(1, Number(svc.config.query_batch_size) || 2000);
    }

    function page(ctx, cursor, offset) {
        const size = batchSize(ctx);
        const records = cursor.records.slice(offset, offset + size);
        const next = offset + size;
        const done = next >= cursor.records.length;
        const body = { totalSize: cursor.records.length, done, records };
        if (!done) {
            body.nextRecordsUrl = '/services/data/v' + cursor.ver.toFixed(1)
                + '/' + cursor.endpoint + '/' + cursor.id + '-' + next;
        }
        return ok(200, body);
    }

    function keepCursor(cursor) {
        ext.cursors.set(cursor.id, cursor);
        if (ext.cursors.size > CURSORS_MAX) {
            ext.cursors.delete(ext.cursors.keys().next().value);
        }
    }

    function runQuery(endpoint) {
        return (ctx) => {
            const ver = api.apiVersion(ctx);
            const q = ctx.query.get('q');
            if (!q) throw malformed('the q parameter is required');
            const cursor = { id: api.newId('01g'), ver, endpoint,
                             records: execute(q, ver) };
            const res = page(ctx, cursor, 0);
            if (!res.body.done) keepCursor(cursor);
            return res;
        };
    }

    function nextPage(ctx) {
        api.apiVersion(ctx);
        const m = /^(01g\w+)-(\d+)$/.exec(ctx.params.locator);
        const cursor = m && ext.cursors.get(m[1]);
        if (!cursor) {
            throw queryError('INVALID_QUERY_LOCATOR', 'invalid query locator');
        }
        return page(ctx, cursor, Number(m[2]));
    }

    const D = '/services/data/:ver';
    ext.routes = [
        ['GET', D + '/query', runQuery('query')],
        ['GET', D + '/query/:locator', nextPage],
        ['GET', D + '/queryAll', runQuery('queryAll')],
        ['GET', D + '/queryAll/:locator', nextPage],
    ];

    return ext;
}

module.exports = { attach, tokenize, Parser };
