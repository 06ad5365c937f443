'use strict';
// A Clever grade passback partner in Node.js using only node:http, for BOTH its server and
// its calls to Clever (no fetch, no npm): written apart from tests/partners/node_partner so
// the contract suite meets a second, independent non-Python client stack (lower-case
// header names as sent, no default Content-Type, hand-made query strings).
//
//   node partner.js --sim http://127.0.0.1:8080 --port 0 --client-id ID --client-secret S
//
// Options (or env): --sim / SIM_URL, --port / PORT (0: any free port), --client-id /
// CLIENT_ID, --client-secret / CLIENT_SECRET. Prints "listening on http://127.0.0.1:PORT".
// BUG=name plants one realistic mistake (see BUGS below); unset, the partner is correct.

const http = require('node:http');
const crypto = require('node:crypto');

function option(flag, envName, fallback) {
  const i = process.argv.indexOf(flag);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  return process.env[envName] !== undefined ? process.env[envName] : fallback;
}

const SIM = option('--sim', 'SIM_URL', 'http://127.0.0.1:8080').replace(/\/+$/, '');
const PORT = Number(option('--port', 'PORT', '5003'));
const CLIENT_ID = option('--client-id', 'CLIENT_ID', '');
const CLIENT_SECRET = option('--client-secret', 'CLIENT_SECRET', '');
const BUG = process.env.BUG || '';
const BUGS = {
  // assignments API
  bare_array: 'answers a bare JSON array instead of {"assignments": [...]}',
  assignments_as_object: 'answers {"assignments": {id: {...}}} (an object keyed by id)',
  numeric_ids: 'ids are JSON numbers',
  missing_type: 'assignments have no "type"',
  html_error_page: 'answers 200 with an HTML error page',
  slow_assignments: 'answers after the time limit',
  no_auth_check: 'serves the list without checking the token',
  // login
  ignores_state: 'always lands on the dashboard',
  keeps_prefix: 'keeps "assignment:" in the id it redirects to',
  double_decode: 'percent-decodes the (already decoded) state a second time',
  redirect_uri_mismatch: 'sends another redirect_uri in the code exchange',
  crash_on_bad_code: 'no error handling when the code exchange fails (500)',
  secret_in_query: 'also sends client_id/client_secret in the token URL query',
  secret_in_auth_param: 'also sends ?auth=client_id:client_secret in the token URL',
  nonce_named_secret: 'not a mistake: the token URL carries ?secret=<a fresh nonce>, not the client secret',
  open_redirect: 'redirects to a URL found in state',
  reflects_id: 'echoes an unknown assignment id unescaped in HTML',
  // grades
  token_in_query: 'sends the grade token as ?access_token= instead of a header',
  token_scheme: 'sends Authorization: Token <token>',
  percent_0_100: 'sends percentage 0-100',
  percent_string: 'sends percentage as a string',
  score_without_max: 'sends scoreGiven without scoreMaximum',
  wrong_user: 'grades the student who last logged in, not the one who completed',
  retries_400: 'retries 4xx answers (400, 403, 404, ...) as if they were transient',
  no_retry_5xx: 'never retries a 5xx',
  ignores_retry_after: 'retries a 429 after its own short pause',
  no_retry_network: 'never retries a dropped connection',
};
if (BUG && !BUGS[BUG]) {
  console.error(`unknown BUG=${BUG}; known: ${Object.keys(BUGS).join(', ')}`);
  process.exit(2);
}
if (!CLIENT_ID || !CLIENT_SECRET) {
  console.error('pass --client-id and --client-secret (or CLIENT_ID/CLIENT_SECRET)');
  process.exit(2);
}

const CATALOG = [
  { id: 'frac101', name: 'Adding Fractions', description: 'Like denominators.', points: 12 },
  { id: 'geo202', name: 'Angles & <Triangles>', standards: ['CCSS.MATH.CONTENT.4.MD.C.5'] },
  { id: 'read303', name: 'Main Idea', points: 40 },
];
const byId = new Map(CATALOG.map((a) => [a.id, a]));
let redirectUri = '';
const sessions = new Map();     // cookie value -> { user, token }
const districtTokens = new Map();
let lastLogin = null;           // user id of the newest login (only BUG=wrong_user reads it)

// --- calls to Clever (node:http client) -----------------------------------------------------

function request(method, url, { headers = {}, body = null, timeoutMs = 8000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    if (body !== null) req.write(body);
    req.end();
  });
}

const basicAuth = () => 'Basic ' + Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function whoAmI(token) {
  const r = await request('GET', `${SIM}/v3.0/me`, { headers: { authorization: `Bearer ${token}` } });
  return r.status === 200 && r.json && r.json.data && r.json.data.id ? r.json.data : null;
}

async function exchange(code) {
  const form = new URLSearchParams({
    grant_type: 'authorization_code', code,
    redirect_uri: BUG === 'redirect_uri_mismatch' ? redirectUri.replace('/clever/callback', '/callback') : redirectUri,
  }).toString();
  let url = `${SIM}/oauth/tokens`;
  if (BUG === 'secret_in_query') url += `?client_id=${CLIENT_ID}&client_secret=${CLIENT_SECRET}`;
  if (BUG === 'secret_in_auth_param') url += `?auth=${encodeURIComponent(`${CLIENT_ID}:${CLIENT_SECRET}`)}`;
  if (BUG === 'nonce_named_secret') url += `?secret=${crypto.randomBytes(8).toString('hex')}`;
  const r = await request('POST', url, {
    headers: { authorization: basicAuth(), 'content-type': 'application/x-www-form-urlencoded',
      'content-length': Buffer.byteLength(form) },
    body: form,
  });
  if (BUG === 'crash_on_bad_code') return r.json.access_token.toString();  // throws on an error answer
  return r.status === 200 && r.json && r.json.access_token ? r.json.access_token : null;
}

async function districtToken(district, fresh) {
  if (!fresh && districtTokens.has(district)) return districtTokens.get(district);
  const r = await request('GET', `${SIM}/oauth/tokens?owner_type=district&district=${encodeURIComponent(district)}`,
    { headers: { authorization: basicAuth() } });
  const first = r.json && Array.isArray(r.json.data) ? r.json.data[0] : null;
  if (!first || !first.access_token) throw new Error(`no district-app token for ${district} (HTTP ${r.status})`);
  districtTokens.set(district, first.access_token);
  return first.access_token;
}

// Retry 429 (after Retry-After), 5xx and network errors with a doubling pause; never other 4xx.
async function postGrade(token, grade) {
  const body = JSON.stringify(grade);
  let url = `${SIM}/v1/grade`;
  const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
  if (BUG === 'token_in_query') url += `?access_token=${encodeURIComponent(token)}`;
  else headers.authorization = `${BUG === 'token_scheme' ? 'Token' : 'Bearer'} ${token}`;
  let pause = 250;
  const limit = 4;
  for (let attempt = 1; ; attempt++) {
    let r;
    try {
      r = await request('POST', url, { headers, body, timeoutMs: 5000 });
    } catch (err) {
      if (BUG === 'no_retry_network' || attempt >= limit) throw err;
      await sleep(pause); pause *= 2;
      continue;
    }
    const transient = r.status === 429 || r.status >= 500;
    const again = BUG === 'retries_400' ? r.status >= 400 && r.status !== 401 : transient;
    if (!again || attempt >= limit || (BUG === 'no_retry_5xx' && r.status >= 500)) return r;
    let wait = pause;
    const after = Number(r.headers['retry-after']);
    if (r.status === 429 && BUG !== 'ignores_retry_after' && Number.isFinite(after)) wait = Math.max(wait, after * 1000);
    if (!transient) wait = 100;  // only BUG=retries_400 gets here with a 4xx
    await sleep(wait); pause *= 2;
  }
}

function scoreOf(assignment, score) {
  if (BUG === 'percent_0_100') return { percentage: Math.round(score * 100) };
  if (BUG === 'percent_string') return { percentage: score.toFixed(2) };
  if (assignment.points) {
    const given = Math.round(score * assignment.points * 1000) / 1000;
    return BUG === 'score_without_max' ? { scoreGiven: given } : { scoreGiven: given, scoreMaximum: assignment.points };
  }
  return { percentage: score };
}

async function reportGrade(userId, district, assignment, score) {
  const grade = { assignmentID: assignment.id, userID: BUG === 'wrong_user' && lastLogin ? lastLogin : userId,
    ...scoreOf(assignment, score) };
  let r = await postGrade(await districtToken(district, false), grade);
  if (r.status === 401) r = await postGrade(await districtToken(district, true), grade);  // revoked: once more
  return r;
}

// --- our pages -------------------------------------------------------------------------------

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function reply(res, status, type, body, extra = {}) {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), ...extra });
  res.end(body);
}
const html = (res, status, title, text, extra) =>
  reply(res, status, 'text/html; charset=utf-8', `<!DOCTYPE html><html><head><title>${esc(title)}</title></head>` +
    `<body><h1>${esc(title)}</h1><p>${esc(text)}</p></body></html>`, extra);
const sendJson = (res, status, value) => reply(res, status, 'application/json', JSON.stringify(value));
function redirect(res, location, cookie) {
  const headers = { Location: location, 'Content-Length': 0 };
  if (cookie) headers['Set-Cookie'] = cookie;
  res.writeHead(302, headers);
  res.end();
}

function sessionOf(req) {
  const m = /(?:^|;\s*)sid=([A-Za-z0-9_-]+)/.exec(req.headers.cookie || '');
  return m ? sessions.get(m[1]) : undefined;
}

async function assignmentsApi(req, res) {
  const m = /^Bearer +(\S+)$/i.exec(req.headers.authorization || '');
  if (BUG !== 'no_auth_check') {
    if (!m) return sendJson(res, 401, { error: 'missing bearer token' });
    if (!(await whoAmI(m[1]))) return sendJson(res, 401, { error: 'invalid bearer token' });
  }
  if (BUG === 'slow_assignments') await sleep(Number(process.env.SLOW_MS || 3000));
  if (BUG === 'html_error_page') {
    return reply(res, 200, 'text/html', '<html><body><h1>Something went wrong</h1></body></html>');
  }
  const items = CATALOG.map((a) => {
    const item = { id: BUG === 'numeric_ids' ? Number(a.id.replace(/\D/g, '')) : a.id, name: a.name };
    if (BUG !== 'missing_type') item.type = 'assignment';
    if (a.description) item.description = a.description;
    if (a.standards) item.standards = a.standards;
    return item;
  });
  if (BUG === 'bare_array') return sendJson(res, 200, items);
  if (BUG === 'assignments_as_object') {
    return sendJson(res, 200, { assignments: Object.fromEntries(items.map((i) => [i.id, i])) });
  }
  return sendJson(res, 200, { assignments: items });
}

async function callback(req, res, url) {
  const code = url.searchParams.get('code');
  if (!code) return html(res, 400, 'Login failed', 'The link has no code. Open the assignment from Schoology again.');
  const token = await exchange(code);
  if (!token) return html(res, 400, 'Login failed', 'Clever did not accept this link. Open the assignment from Schoology again.');
  const user = await whoAmI(token);
  if (!user) return html(res, 400, 'Login failed', 'Clever did not say who you are.');
  const sid = crypto.randomBytes(18).toString('base64url');
  sessions.set(sid, { user, token });
  lastLogin = user.id;
  const cookie = `sid=${sid}; Path=/; HttpOnly; SameSite=Lax`;
  let state = url.searchParams.get('state') || '';
  if (BUG === 'double_decode') {
    try { state = decodeURIComponent(state); } catch { /* keep it */ }
  }
  if (BUG === 'ignores_state' || !state.startsWith('assignment:') || state === 'assignment:') {
    return redirect(res, '/home', cookie);
  }
  const id = BUG === 'keeps_prefix' ? state : state.slice('assignment:'.length);
  if (BUG === 'open_redirect' && /^(https?:)?\/\//i.test(id)) return redirect(res, id, cookie);
  return redirect(res, `/assignments/${encodeURIComponent(id)}`, cookie);
}

function assignmentPage(req, res, rawId) {
  const session = sessionOf(req);
  if (!session) return redirect(res, '/');
  let id;
  try { id = decodeURIComponent(rawId); } catch { return html(res, 400, 'Bad link', 'This assignment link is malformed.'); }
  const a = byId.get(id);
  if (!a) {
    if (BUG === 'reflects_id') {
      return reply(res, 404, 'text/html', `<html><body><h1>No assignment ${id}</h1></body></html>`);
    }
    return html(res, 404, 'Assignment not found', `There is no assignment "${id}". Go back to Schoology.`);
  }
  return html(res, 200, a.name, `Ready when you are, ${session.user.id}.`);
}

async function completeHook(req, res) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  let body;
  try { body = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { body = null; }
  if (!body || typeof body.user_id !== 'string' || typeof body.district_id !== 'string'
      || typeof body.score !== 'number') {
    return sendJson(res, 400, { error: 'need user_id, district_id (strings), assignment_id, score (0-1)' });
  }
  const a = byId.get(String(body.assignment_id));
  if (!a) return sendJson(res, 404, { error: `no assignment ${body.assignment_id}` });
  let r;
  try {
    r = await reportGrade(body.user_id, body.district_id, a, body.score);
  } catch (err) {
    return sendJson(res, 502, { error: String(err.message) });
  }
  return sendJson(res, r.status === 200 ? 200 : 502, { clever_status: r.status, clever: r.json });
}

async function route(req, res) {
  const url = new URL(req.url, 'http://localhost');
  const p = url.pathname;
  if (req.method === 'GET' && p === '/clever/assignments') return assignmentsApi(req, res);
  if (req.method === 'GET' && p === '/clever/callback') return callback(req, res, url);
  if (req.method === 'GET' && p.startsWith('/assignments/')) return assignmentPage(req, res, p.slice(13));
  if (req.method === 'POST' && p === '/test-hooks/complete') return completeHook(req, res);
  if (req.method === 'GET' && p === '/home') {
    const s = sessionOf(req);
    return s ? html(res, 200, 'Your assignments', CATALOG.map((a) => a.name).join(', ')) : redirect(res, '/');
  }
  if (req.method === 'GET' && p === '/') return html(res, 200, 'Welcome', 'Log in with Clever from Schoology.');
  return html(res, 404, 'Not found', 'No such page.');
}

const server = http.createServer((req, res) => {
  route(req, res).catch((err) => {
    console.error(err && err.stack);
    if (!res.headersSent) reply(res, 500, 'text/plain', 'Internal Server Error');
    else res.destroy();
  });
});
server.listen(PORT, '127.0.0.1', () => {
  const { port } = server.address();
  redirectUri = `http://127.0.0.1:${port}/clever/callback`;
  console.log(`listening on http://127.0.0.1:${port}`);
});
process.on('SIGTERM', () => process.exit(0));
