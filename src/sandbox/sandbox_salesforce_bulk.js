'use strict';

// Bulk API 2.0 ingest for the Salesforce emulation (docs/sandbox.md,
// apis.md §11.6): a job, one CSV upload, UploadComplete, processing a
// moment later through the same checks as the REST upsert (uniqueness,
// validation rules, injected errors), and CSV results whose rows come in
// another order than the upload's, so clients must join on the external
// id as they must with Salesforce.

const crypto = require('crypto');
const { HttpError, ok } = require('./sandbox_core');

// delete and hardDelete are not emulated: no record deletion yet
const OPERATIONS = ['insert', 'update', 'upsert'];
const DELIMITERS = { COMMA: ',', TAB: '\t', PIPE: '|', SEMICOLON: ';',
                     CARET: '^', BACKQUOTE: '`' };
const LINE_ENDINGS = { LF: '\n', CRLF: '\r\n' };
const TERMINAL = ['JobComplete', 'Failed', 'Aborted'];

function bulkError(status, errorCode, message) {
    return new HttpError(status, [{ errorCode, message }]);
}

// RFC 4180 with any one-character delimiter: quoted cells may hold
// delimiters, quotes ("") and line breaks.  -> { rows, endings } where
// endings are the record terminators seen outside quotes.
function parseCsv(text, delim) {
    const rows = [];
    const endings = new Set();
    let row = [];
    let cell = '';
    let quoted = false;
    let fresh = true;           // at the start of a cell
    const endCell = () => { row.push(cell); cell = ''; fresh = true; };
    for (let i = 0; i < text.length; i++) {
        const c = text[i];
        if (quoted) {
            if (c !== '"') cell += c;
            else if (text[i + 1] === '"') { cell += '"'; i++; }
            else quoted = false;
        } else if (c === '"' && fresh) {
            quoted = true;
            fresh = false;
        } else if (c === delim) {
            endCell();
        } else if (c === '\n' || (c === '\r' && text[i + 1] === '\n')) {
            endings.add(c === '\n' ? '\n' : '\r\n');
            if (c === '\r') i++;
            endCell();
            rows.push(row);
            row = [];
        } else {
            cell += c;
            fresh = false;
        }
    }
    if (quoted) throw new Error('unterminated quoted field');
    if (!fresh || row.length) { endCell(); rows.push(row); }
    // blank lines carry no record
    return { rows: rows.filter((r) => r.length > 1 || r[0] !== ''),
             endings };
}

function quoteAlways(v) {
    return '"' + String(v === null || v === undefined ? '' : v)
        .replace(/"/g, '""') + '"';
}

function quoteIfNeeded(v, delim) {
    const s = String(v);
    return /["\r\n]/.test(s) || s.includes(delim) ? quoteAlways(s) : s;
}

function attach(svc) {
    const api = svc.api;
    const ext = { routes: [] };

    ext.reset = () => {
        for (const job of (ext.jobs || new Map()).values()) stopTimers(job);
        ext.jobs = new Map();
    };

    function stopTimers(job) {
        for (const t of job.timers) clearTimeout(t);
        job.timers = [];
    }

    function touch(job) { job.modstamp = Date.now(); }

    function jobOr404(ctx) {
        const job = ext.jobs.get(ctx.params.id);
        if (!job) {
            throw bulkError(404, 'NOT_FOUND',
                            'The requested resource does not exist');
        }
        return job;
    }

    function jobInfo(job, full) {
        const out = {
            id: job.id, operation: job.operation, object: job.object,
            createdById: job.createdById,
            createdDate: api.sfTime(job.created),
            systemModstamp: api.sfTime(job.modstamp), state: job.state,
        };
        if (job.externalIdFieldName) {
            out.externalIdFieldName = job.externalIdFieldName;
        }
        Object.assign(out, {
            concurrencyMode: 'Parallel', contentType: 'CSV',
            apiVersion: job.apiVersion, jobType: 'V2Ingest',
            contentUrl: 'services/data/v' + job.apiVersion.toFixed(1)
                + '/jobs/ingest/' + job.id + '/batches',
            lineEnding: job.lineEnding, columnDelimiter: job.columnDelimiter,
        });
        if (!full) return out;
        Object.assign(out, {
            numberRecordsProcessed: job.processed,
            numberRecordsFailed: job.failed, retries: 0,
            totalProcessingTime: job.processingMs,
            apiActiveProcessingTime: job.processingMs,
            apexProcessingTime: 0,
        });
        if (job.errorMessage) out.errorMessage = job.errorMessage;
        return out;
    }

    // --- create, upload, state ------------------------------------------

    // The checks of job creation; messages UNCONFIRMED.
    function checkJobRequest(b) {
        const bad = (m) => bulkError(400, 'INVALIDJOB', m);
        if (!b || typeof b !== 'object' || Array.isArray(b)) {
            throw bad('The request body must be a JSON object');
        }
        if (!b.object || !svc.config.objects[b.object]) {
            throw bad('Unable to find object: ' + b.object);
        }
        if (!OPERATIONS.includes(b.operation)) {
            throw bad('Invalid operation: ' + b.operation);
        }
        const extIds = svc.config.objects[b.object].external_ids || [];
        if (b.operation === 'upsert' && !b.externalIdFieldName) {
            throw bad('External ID was blank for ' + b.object + '. An'
                      + ' External ID must be specified for upsert.');
        }
        if (b.operation === 'upsert' && !extIds.includes(
            b.externalIdFieldName)) {
            throw bad('The field ' + b.externalIdFieldName + ' is not an'
                      + ' external id field of ' + b.object);
        }
        if ((b.contentType || 'CSV') !== 'CSV') {
            throw bad('Invalid contentType: ' + b.contentType);
        }
        if (!LINE_ENDINGS[b.lineEnding || 'LF']) {
            throw bad('Invalid lineEnding: ' + b.lineEnding);
        }
        if (!DELIMITERS[b.columnDelimiter || 'COMMA']) {
            throw bad('Invalid columnDelimiter: ' + b.columnDelimiter);
        }
    }

    function createJob(ctx) {
        const ver = api.apiVersion(ctx);
        const b = ctx.json();
        checkJobRequest(b);
        const now = Date.now();
        const job = {
            id: api.newId('750'), operation: b.operation, object: b.object,
            externalIdFieldName: b.operation === 'upsert'
                ? b.externalIdFieldName : undefined,
            lineEnding: b.lineEnding || 'LF',
            columnDelimiter: b.columnDelimiter || 'COMMA',
            apiVersion: ver, createdById: api.actorOf(ctx),
            created: now, modstamp: now, state: 'Open', data: null,
            processed: 0, failed: 0, processingMs: 0, timers: [],
            results: null, header: null, rows: null,
        };
        ext.jobs.set(job.id, job);
        return ok(200, jobInfo(job, false));
    }

    function uploadData(ctx) {
        api.apiVersion(ctx);
        const job = jobOr404(ctx);
        if (!/^text\/csv\b/i.test(ctx.headers['content-type'] || '')) {
            throw bulkError(400, 'INVALIDJOB',   // UNCONFIRMED code
                            'Content-Type must be text/csv');
        }
        if (job.state !== 'Open' || job.data !== null) {
            throw bulkError(409, 'INVALIDJOBSTATE', 'Job ' + job.id
                            + ' is not open for data (state ' + job.state
                            + (job.data !== null ? ', data uploaded' : '')
                            + ')');
        }
        job.data = ctx.text();
        touch(job);
        return ok(201);
    }

    function changeState(ctx) {
        api.apiVersion(ctx);
        const job = jobOr404(ctx);
        const want = (ctx.json() || {}).state;
        const allowed = {
            UploadComplete: ['Open'],
            Aborted: ['Open', 'UploadComplete', 'InProgress'],
        };
        if (!allowed[want]) {
            throw bulkError(400, 'INVALIDJOBSTATE',
                            'Invalid state: ' + want);
        }
        if (!allowed[want].includes(job.state)) {
            throw bulkError(409, 'INVALIDJOBSTATE', 'Job ' + job.id
                            + ' cannot go from ' + job.state + ' to '
                            + want);
        }
        job.state = want;
        touch(job);
        if (want === 'Aborted') stopTimers(job);
        else schedule(job);
        return ok(200, jobInfo(job, false));
    }

    // UploadComplete -> InProgress -> JobComplete | Failed, on timers.
    function schedule(job) {
        const start = Number(svc.config.bulk_start_ms) || 0;
        const work = Number(svc.config.bulk_processing_ms) || 0;
        job.timers.push(setTimeout(() => {
            if (job.state !== 'UploadComplete') return;
            job.state = 'InProgress';
            touch(job);
            job.timers.push(setTimeout(() => finish(job), work));
        }, start));
    }

    function fail(job, message) {
        job.state = 'Failed';
        job.errorMessage = message;
        touch(job);
    }

    function finish(job) {
        if (job.state !== 'InProgress') return;
        const t0 = Date.now();
        const problem = loadData(job);
        if (problem) {
            fail(job, problem);
            return;
        }
        job.results = job.rows.map((cells, i) => processRow(job, cells, i));
        job.processed = job.results.length;
        job.failed = job.results.filter((r) => r.error).length;
        job.processingMs = Date.now() - t0;
        job.state = 'JobComplete';
        touch(job);
    }

    // --- processing -----------------------------------------------------

    // Parses the upload into job.header and job.rows; a message when
    // the whole job must fail (messages UNCONFIRMED).
    function loadData(job) {
        if (job.data === null || job.data === '') {
            return 'InvalidBatch : no data uploaded';
        }
        let parsed;
        try {
            parsed = parseCsv(job.data, DELIMITERS[job.columnDelimiter]);
        } catch (e) {
            return 'InvalidBatch : ' + e.message;
        }
        const want = LINE_ENDINGS[job.lineEnding];
        if ([...parsed.endings].some((e) => e !== want)) {
            return 'LineEnding is invalid on user data. Current LineEnding'
                + ' setting is ' + job.lineEnding;
        }
        const [header, ...rows] = parsed.rows;
        job.header = header || [];
        job.rows = rows;
        return headerProblem(job) || rowProblem(job);
    }

    function headerProblem(job) {
        const h = job.header;
        if (!h.length || h.every((f) => f === '')) {
            return 'InvalidBatch : the header row is empty';
        }
        const dup = h.find((f, i) => h.indexOf(f) !== i);
        if (dup !== undefined) {
            return 'InvalidBatch : Duplicate field name: ' + dup;
        }
        const known = api.objectConf(job.object).fields;
        const allowed = (f) => f === 'Id' || !known || known.includes(f)
            || (api.objectConf(job.object).external_ids || []).includes(f);
        const unknown = h.find((f) => !allowed(f)
                                      || api.SYSTEM_FIELDS.includes(f));
        if (unknown !== undefined) {
            return 'InvalidBatch : Field name not found : ' + unknown;
        }
        if (job.operation === 'upsert'
            && !h.includes(job.externalIdFieldName)) {
            return 'InvalidBatch : The External ID field '
                + job.externalIdFieldName + ' is missing from the header';
        }
        if (job.operation === 'update' && !h.includes('Id')) {
            return 'InvalidBatch : The Id field is missing from the header';
        }
        return null;
    }

    function rowProblem(job) {
        const i = job.rows.findIndex((r) => r.length !== job.header.length);
        return i < 0 ? null : 'InvalidBatch : Wrong number of columns in'
            + ' row ' + (i + 2) + ': ' + job.rows[i].length + ' instead of '
            + job.header.length;
    }

    // Empty cells leave a field alone; #N/A sets it to null.
    function rowFields(job, cells) {
        const fields = {};
        for (let i = 0; i < job.header.length; i++) {
            const text = cells[i];
            if (text === '') continue;
            if (text === '#N/A') {
                fields[job.header[i]] = null;
                continue;
            }
            const v = api.fromCsv(job.object, job.header[i], text);
            if (v.error) return { error: v.error };
            fields[job.header[i]] = v.value;
        }
        return { fields };
    }

    function duplicateValues(job) {
        if (job.operation !== 'upsert') return new Set();
        const col = job.header.indexOf(job.externalIdFieldName);
        const seen = new Map();
        for (const r of job.rows) {
            const k = svc.config.case_sensitive_ext_ids ? r[col]
                : r[col].toLowerCase();
            seen.set(k, (seen.get(k) || 0) + 1);
        }
        return new Set([...seen].filter(([k, n]) => k !== '' && n > 1)
            .map(([k]) => k));
    }

    function processRow(job, cells, index) {
        if (!job.batch) {
            job.batch = api.newBatch();
            job.dups = duplicateValues(job);
        }
        const out = { index, cells };
        const parsed = rowFields(job, cells);
        const outcome = parsed.error ? { error: parsed.error }
            : job.operation === 'upsert' ? upsertRow(job, parsed.fields)
            : job.operation === 'insert' ? insertRow(job, parsed.fields)
            : updateRow(job, parsed.fields);
        return Object.assign(out, outcome);
    }

    function failure(statusCode, message, fields) {
        return { error: { statusCode, message, fields: fields || [] } };
    }

    function write(job, rec, fields) {
        const w = api.writeRecord(job.object, rec, fields, 'bulk',
                                  job.createdById);
        return { id: w.rec.Id, created: w.created };
    }

    function upsertRow(job, fields) {
        const field = job.externalIdFieldName;
        const value = fields[field];
        delete fields[field];
        const key = value === undefined || value === null ? ''
            : svc.config.case_sensitive_ext_ids ? String(value)
            : String(value).toLowerCase();
        if (job.dups.has(key)) {
            return failure('DUPLICATE_EXTERNAL_ID', 'Duplicate external id'
                           + ' specified: ' + value, [field]);
        }
        const plan = api.planUpsert(job.object, field, value, fields,
                                    { batch: job.batch });
        if (plan.error) return { error: plan.error };
        return write(job, plan.rec, plan.fields);
    }

    function injectedFor(job, fields) {
        for (const f of api.objectConf(job.object).external_ids || []) {
            if (api.isBlank(fields[f])) continue;
            const hit = api.takeInjected(job.object, f, fields[f]);
            if (hit) return hit;
        }
        return null;
    }

    function insertRow(job, fields) {
        const readOnly = api.readOnlyField(fields);
        if (readOnly) return { error: readOnly };
        const injected = injectedFor(job, fields);
        if (injected) {
            return failure(injected.statusCode, injected.message,
                           injected.fields);
        }
        const owner = {};
        const bad = api.checkWrite(job.object, null, fields, job.batch,
                                   owner);
        if (bad) return { error: bad };
        api.claimUnique(job.object, fields, job.batch, owner);
        return write(job, null, fields);
    }

    function updateRow(job, fields) {
        const id = fields.Id;
        delete fields.Id;
        const rec = id ? api.findById(job.object, id) : null;
        if (!rec) {
            return failure('INVALID_CROSS_REFERENCE_KEY',
                           'invalid cross reference id', ['Id']);
        }
        const readOnly = api.readOnlyField(fields);
        if (readOnly) return { error: readOnly };
        const injected = api.takeInjected(job.object, null, rec.Id)
            || injectedFor(job, fields);
        if (injected) {
            return failure(injected.statusCode, injected.message,
                           injected.fields);
        }
        const bad = api.checkWrite(job.object, rec, fields, job.batch, rec);
        if (bad) return { error: bad };
        api.claimUnique(job.object, fields, job.batch, rec);
        return write(job, rec, fields);
    }

    // --- results ----------------------------------------------------------

    // A fixed order per job that is not the upload's.
    function shuffled(job, results) {
        const rank = (r) => crypto.createHash('sha1')
            .update(job.id + ':' + r.index).digest('hex');
        const out = results.slice().sort((a, b) =>
            (rank(a) < rank(b) ? -1 : 1));
        // never the upload order by chance
        if (out.length > 1 && out.every((r, i) => r === results[i])) {
            out.push(out.shift());
        }
        return out;
    }

    function csvAnswer(job, head, lines) {
        const d = DELIMITERS[job.columnDelimiter];
        const eol = LINE_ENDINGS[job.lineEnding];
        const text = [head.join(d), ...lines.map((l) => l.join(d))]
            .map((l) => l + eol).join('');
        return ok(200, text, { 'Content-Type': 'text/csv' });
    }

    function originalHeader(job) {
        const d = DELIMITERS[job.columnDelimiter];
        return (job.header || []).map((f) => quoteIfNeeded(f, d));
    }

    function finishedJob(ctx) {
        api.apiVersion(ctx);
        const job = jobOr404(ctx);
        if (!TERMINAL.includes(job.state)) {
            throw bulkError(409, 'INVALIDJOBSTATE', 'Job ' + job.id
                            + ' is not finished (state ' + job.state + ')');
        }
        return job;
    }

    function errorText(e) {
        return e.statusCode + ':' + e.message + ':'
            + (e.fields || []).join(',') + ' --';
    }

    function successfulResults(ctx) {
        const job = finishedJob(ctx);
        const rows = shuffled(job, (job.results || []).filter((r) =>
            !r.error)).map((r) => [quoteAlways(r.id),
            quoteAlways(r.created ? 'true' : 'false'),
            ...r.cells.map(quoteAlways)]);
        return csvAnswer(job, ['"sf__Id"', '"sf__Created"',
                               ...originalHeader(job)], rows);
    }

    function failedResults(ctx) {
        const job = finishedJob(ctx);
        const rows = shuffled(job, (job.results || []).filter((r) =>
            r.error)).map((r) => [quoteAlways(''),
            quoteAlways(errorText(r.error)), ...r.cells.map(quoteAlways)]);
        return csvAnswer(job, ['"sf__Id"', '"sf__Error"',
                               ...originalHeader(job)], rows);
    }

    // Rows never processed: those of an aborted or failed job.
    function unprocessedRecords(ctx) {
        api.apiVersion(ctx);
        const job = jobOr404(ctx);
        if (job.results || job.data === null) {
            return csvAnswer(job, originalHeader(job), []);
        }
        let parsed;
        try {
            parsed = parseCsv(job.data, DELIMITERS[job.columnDelimiter]);
        } catch (e) {
            return ok(200, job.data, { 'Content-Type': 'text/csv' });
        }
        const [header, ...rows] = parsed.rows;
        const d = DELIMITERS[job.columnDelimiter];
        return csvAnswer(job, (header || []).map((f) => quoteIfNeeded(f, d)),
                         rows.map((r) => r.map(quoteAlways)));
    }

    function getJob(ctx) {
        api.apiVersion(ctx);
        return ok(200, jobInfo(jobOr404(ctx), true));
    }

    function deleteJob(ctx) {
        api.apiVersion(ctx);
        const job = jobOr404(ctx);
        if (!TERMINAL.includes(job.state) && job.state !== 'Open') {
            throw bulkError(409, 'INVALIDJOBSTATE', 'Job ' + job.id
                            + ' cannot be deleted in state ' + job.state);
        }
        stopTimers(job);
        ext.jobs.delete(job.id);
        return ok(204);
    }

    function listJobs(ctx) {
        api.apiVersion(ctx);
        return ok(200, { done: true, nextRecordsUrl: null,
                         records: [...ext.jobs.values()].map((j) =>
                             jobInfo(j, false)) });
    }

    const J = '/services/data/:ver/jobs/ingest';
    ext.routes = [
        ['POST', J, createJob],
        ['GET', J, listJobs],
        ['PUT', J + '/:id/batches', uploadData],
        ['PATCH', J + '/:id', changeState],
        ['GET', J + '/:id', getJob],
        ['DELETE', J + '/:id', deleteJob],
        ['GET', J + '/:id/successfulResults', successfulResults],
        ['GET', J + '/:id/failedResults', failedResults],
        ['GET', J + '/:id/unprocessedrecords', unprocessedRecords],
    ];

    // /_sandbox/state/salesforce/jobs[/ID]
    ext.dump = (parts) => {
        if (parts[0] !== 'jobs') return null;
        const view = (j) => Object.assign(jobInfo(j, true), {
            rows: j.rows ? j.rows.length : null,
            uploaded_bytes: j.data === null ? null
                : Buffer.byteLength(j.data) });
        if (parts[1]) {
            const j = ext.jobs.get(parts[1]);
            return j ? view(j) : {};
        }
        return { jobs: [...ext.jobs.values()].map(view) };
    };

    return ext;
}

module.exports = { attach, parseCsv };
