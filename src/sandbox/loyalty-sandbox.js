#!/usr/bin/env node
'use strict';

// loyalty-sandbox: the external APIs loyalty-edge talks to, emulated on
// loopback for the tests, the demo and the benchmarks (docs/sandbox.md).
//
//   loyalty-sandbox [--listen HOST:PORT] [--port-file FILE] [--config FILE]
//                   [--log-max N] [--log-body-max BYTES]
//
// --log-max: request log entries kept (default 200000; 0 keeps none, the
// count goes on); --log-body-max: bytes of each body kept in the log
// (default 65536).  For benchmarks; the defaults are what tests expect.
//
// PORT 0 (the default) picks a free port; the chosen one is printed and,
// with --port-file, written to FILE once the server accepts connections.

const fs = require('fs');
const path = require('path');
const { Sandbox } = require('./sandbox_core');

const MODULES = [
    'sandbox_hooks',
    'sandbox_salesforce',
    'sandbox_loyaltylion',
    'sandbox_bigcommerce',
    'sandbox_smile',
    'sandbox_yotpo',
    'sandbox_voyado',
];

function usage(msg) {
    process.stderr.write('loyalty-sandbox: ' + msg + '\n'
        + 'usage: loyalty-sandbox [--listen HOST:PORT] [--port-file FILE]'
        + ' [--config FILE] [--log-max N] [--log-body-max BYTES]\n');
    process.exit(2);
}

function parseArgs(argv) {
    const o = { host: '127.0.0.1', port: 0 };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const v = argv[i + 1];
        if (a === '--listen' && v) {
            const m = /^(?:(.*):)?([0-9]+)$/.exec(v);
            if (!m) usage('bad --listen ' + v);
            if (m[1]) o.host = m[1];
            o.port = Number(m[2]);
            i++;
        } else if (a === '--port-file' && v) {
            o.portFile = v;
            i++;
        } else if (a === '--config' && v) {
            o.config = v;
            i++;
        } else if ((a === '--log-max' || a === '--log-body-max') && v) {
            if (!/^[0-9]+$/.test(v)) usage('bad ' + a + ' ' + v);
            o[a === '--log-max' ? 'logMax' : 'logBodyMax'] = Number(v);
            i++;
        } else {
            usage('unknown argument ' + a);
        }
    }
    return o;
}

async function main() {
    const o = parseArgs(process.argv.slice(2));
    const sb = new Sandbox({ logMax: o.logMax, logBodyMax: o.logBodyMax });
    for (const m of MODULES) sb.add(require(path.join(__dirname, m)));
    if (o.config) {
        const conf = JSON.parse(fs.readFileSync(o.config, 'utf8'));
        for (const [name, c] of Object.entries(conf)) {
            const svc = sb.service(name);
            if (!svc) usage('--config: no service ' + name);
            if (name === 'hooks') {
                for (const r of c.receivers || []) svc.actions.receiver(r);
            } else {
                Object.assign(svc.config, c);
            }
        }
    }
    const port = await sb.listen(o.host, o.port);
    if (o.portFile) {
        fs.writeFileSync(o.portFile + '.tmp', String(port) + '\n');
        fs.renameSync(o.portFile + '.tmp', o.portFile);
    }
    process.stdout.write('loyalty-sandbox listening on http://' + o.host
                         + ':' + port + '\n');
    const stop = () => sb.server.close(() => process.exit(0));
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
}

main().catch((e) => {
    process.stderr.write('loyalty-sandbox: ' + e.stack + '\n');
    process.exit(1);
});
