// Owns starting and stopping a real rekeyd for the JavaScript suites (tests/web, tests/sdk-js), the
// way tests/common/rekeyd.py does for Python: a free loopback port, a fresh data directory, plain
// HTTP or HTTPS with a throwaway CA, SQLite or a fresh PostgreSQL database, extra flags. Readiness is
// rekeyd's ready file (`--ready-file`), which names the URL and the owner token; nothing reads the
// log for them. A PostgreSQL run without REKEY_TEST_POSTGRES_URL fails, unless
// REKEY_TEST_BACKENDS=sqlite leaves PostgreSQL out on purpose.
//
// As a program, it runs a command against a started rekeyd, once per backend asked for:
//
//   node tests/common/rekeyd.mjs [--tls] [--backends sqlite,postgres] [--flag F]... -- COMMAND...
//
// The command gets REKEY_URL, REKEY_READY (the ready file, also the token file: it holds `token`),
// REKEY_BOOTSTRAP (bootstrap.json) and, with --tls, NODE_EXTRA_CA_CERTS; on failure it prints the
// tail of rekeyd's log. Exits with the first failing command's status.

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const START_TIMEOUT_MS = 30_000;
const POSTGRES_URL_VAR = 'REKEY_TEST_POSTGRES_URL';
const BACKENDS_VAR = 'REKEY_TEST_BACKENDS';
// Settings rekeyd reads from the environment that must come from the caller, never the shell.
const CLEARED_ENV = ['REKEY_MASTER_KEY', 'REKEY_DATABASE_URL', 'REKEY_PUBLIC_URL', 'REKEY_READY_FILE'];

export function rekeydBinary() {
  const raw = process.env.REKEYD_BIN || 'target/debug/rekeyd';
  return isAbsolute(raw) ? raw : join(REPO_ROOT, raw);
}

/** SQLite, and PostgreSQL unless REKEY_TEST_BACKENDS=sqlite. */
export function backends() {
  return (process.env[BACKENDS_VAR] || '').trim() === 'sqlite' ? ['sqlite'] : ['sqlite', 'postgres'];
}

function postgresAdminUrl() {
  const url = (process.env[POSTGRES_URL_VAR] || '').trim();
  if (!url) {
    throw new Error(
      `${POSTGRES_URL_VAR} is not set: start a server with \`scripts/pg-cluster start DIR\` and set it ` +
        `to the URL printed, or set ${BACKENDS_VAR}=sqlite to leave PostgreSQL out on purpose ` +
        '(scripts/test does the former by itself)',
    );
  }
  return url;
}

/** `url` (postgres://USER@HOST:PORT/DB?QUERY) with its database name replaced. */
function withDatabase(url, database) {
  const [base, query] = url.split(/\?(.*)/s);
  const start = base.includes('://') ? base.indexOf('://') + 3 : 0;
  const slash = base.indexOf('/', start);
  const host = slash < 0 ? base : base.slice(0, slash);
  return `${host}/${database}${query !== undefined ? `?${query}` : ''}`;
}

function psql(url, sql) {
  const done = spawnSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', sql], { encoding: 'utf8' });
  if (done.error) throw new Error(`psql: ${done.error.message} (apt-get install postgresql-client)`);
  if (done.status !== 0) throw new Error(`psql ${sql}: ${done.stderr.trim()}`);
}

function openssl(cwd, ...args) {
  const done = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (done.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${done.stderr || done.error}`);
}

/** A throwaway CA and a server certificate for 127.0.0.1 and localhost (ECDSA P-256). */
export function makeCertificates(directory) {
  mkdirSync(directory, { recursive: true });
  const ec = ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  openssl(directory, 'genpkey', ...ec, '-out', 'ca.key');
  openssl(directory, 'req', '-x509', '-new', '-key', 'ca.key', '-sha256', '-days', '7',
    '-subj', '/CN=rekey test CA', '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-addext', 'subjectKeyIdentifier=hash',
    '-out', 'ca.pem');
  openssl(directory, 'genpkey', ...ec, '-out', 'server.key');
  openssl(directory, 'req', '-new', '-key', 'server.key', '-subj', '/CN=localhost', '-out', 'server.csr');
  writeFileSync(join(directory, 'server.ext'), [
    'basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=serverAuth', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid,issuer', '',
  ].join('\n'));
  openssl(directory, 'x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
    '-CAcreateserial', '-days', '7', '-sha256', '-extfile', 'server.ext', '-out', 'server.pem');
  return { caCert: join(directory, 'ca.pem'), cert: join(directory, 'server.pem'), key: join(directory, 'server.key') };
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/**
 * Starts rekeyd in `workdir` (data in workdir/data, log workdir/rekeyd.log, ready file
 * workdir/ready.json) on `backend` ('sqlite' or 'postgres': a fresh database, dropped by stop()).
 * Resolves once the ready file appears; rejects with the log if rekeyd exits or takes too long.
 */
export async function startRekeyd({ workdir, backend = 'sqlite', tls = false, flags = [], env = {} }) {
  const binary = rekeydBinary();
  if (!existsSync(binary)) throw new Error(`no rekeyd at ${binary} (cargo build -p rekey-server, or set REKEYD_BIN)`);
  mkdirSync(workdir, { recursive: true });
  const dataDir = join(workdir, 'data');
  const logPath = join(workdir, 'rekeyd.log');
  const readyPath = join(workdir, 'ready.json');
  const args = ['--listen', '127.0.0.1:0', '--data-dir', dataDir, '--ready-file', readyPath, ...flags];
  let caPath;
  if (tls) {
    const certs = makeCertificates(join(workdir, 'tls'));
    caPath = certs.caCert;
    args.push('--tls-cert', certs.cert, '--tls-key', certs.key);
  }
  const childEnv = { ...process.env, RUST_LOG: 'info' };
  for (const name of CLEARED_ENV) delete childEnv[name];
  let dropDatabase = () => {};
  if (backend === 'postgres') {
    const admin = postgresAdminUrl();
    const name = `rekey_js_${randomBytes(8).toString('hex')}`;
    psql(admin, `CREATE DATABASE ${name}`);
    dropDatabase = () => psql(admin, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    childEnv.REKEY_DATABASE_URL = withDatabase(admin, name);
  }
  Object.assign(childEnv, env);
  if (existsSync(readyPath)) unlinkSync(readyPath);
  const log = openSync(logPath, 'a');
  const child = spawn(binary, args, { env: childEnv, stdio: ['ignore', 'ignore', log] });
  let exited = null;
  child.on('exit', (code, signal) => { exited = signal || `status ${code}`; });
  const logTail = (lines = 50) =>
    (existsSync(logPath) ? readFileSync(logPath, 'utf8') : '').split('\n').slice(-lines).join('\n');
  const stop = async () => {
    if (exited === null) {
      const gone = new Promise((done) => child.once('exit', done));
      child.kill('SIGTERM');
      await Promise.race([gone, sleep(15_000).then(() => child.kill('SIGKILL'))]);
    }
    dropDatabase();
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  // rekeyd renames the ready file into place whole: once it exists, it is complete.
  while (!existsSync(readyPath)) {
    if (exited !== null || Date.now() > deadline) {
      const why = exited !== null ? `exited (${exited})` : `wrote no ready file within ${START_TIMEOUT_MS / 1000} s`;
      await stop();
      throw new Error(`rekeyd (${backend}) ${why}; log:\n${logTail()}`);
    }
    await sleep(10);
  }
  const ready = JSON.parse(readFileSync(readyPath, 'utf8'));
  return {
    url: ready.url,
    token: ready.token,
    subscriptionId: ready.subscriptionId,
    tenantId: ready.tenantId,
    readyPath,
    bootstrapPath: join(dataDir, 'bootstrap.json'),
    caPath,
    logTail,
    stop,
  };
}

async function main(argv) {
  const split = argv.indexOf('--');
  if (split < 0 || split === argv.length - 1) {
    console.error('usage: node tests/common/rekeyd.mjs [--tls] [--backends sqlite,postgres] [--flag F]... -- COMMAND...');
    return 2;
  }
  const options = argv.slice(0, split);
  const command = argv.slice(split + 1);
  let tls = false;
  let wanted = backends();
  const flags = [];
  for (let i = 0; i < options.length; i++) {
    if (options[i] === '--tls') tls = true;
    else if (options[i] === '--backends') wanted = options[++i].split(',').filter((b) => backends().includes(b));
    else if (options[i] === '--flag') flags.push(options[++i]);
    else throw new Error(`unknown option ${options[i]}`);
  }
  const work = mkdtempSync(join(tmpdir(), 'rekeyd-js-'));
  let status = 0;
  try {
    for (const backend of wanted) {
      if (wanted.length > 1) console.log(`== rekeyd on ${backend}`);
      const server = await startRekeyd({ workdir: join(work, backend), backend, tls, flags });
      const env = {
        ...process.env,
        REKEY_URL: server.url,
        REKEY_READY: server.readyPath,
        REKEY_BOOTSTRAP: server.bootstrapPath,
        REKEY_BACKEND: backend,
      };
      if (server.caPath) env.NODE_EXTRA_CA_CERTS = server.caPath;
      const run = spawnSync(command[0], command.slice(1), { env, stdio: 'inherit' });
      const code = run.status ?? 1;
      if (code !== 0) {
        console.error(`--- rekeyd log (${backend}) ---\n${server.logTail()}`);
        status ||= code;
      }
      await server.stop();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return status;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (status) => process.exit(status),
    (error) => {
      console.error(error.message);
      process.exit(1);
    },
  );
}
