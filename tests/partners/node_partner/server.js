'use strict';
// A correct Clever grade passback partner in Node.js, standard library only (Node 20+:
// http, URL, crypto and the global fetch). The contract suite must pass it as it passes
// the Python reference partner: the contract is about HTTP, not about Python.
//
//   SIM_URL=http://127.0.0.1:8080 CLIENT_ID=... CLIENT_SECRET=... PORT=0 node server.js
//
// Environment: SIM_URL (or CLEVER_URL, API_URL, GRADES_URL separately), CLIENT_ID,
// CLIENT_SECRET, PORT (0 = any free port), HOST (default 127.0.0.1), REDIRECT_URI
// (default http://HOST:PORT/clever/callback). Prints "listening on http://HOST:PORT".
//
// Routes: GET /clever/assignments (Clever's grade passback guide, Step 1), GET /clever/callback (Step 2),
// GET /assignments/:id, GET /dashboard, GET /login, GET /healthz, and the contract
// suite's provider-state hook POST /test-hooks/complete (Step 3).

const http = require('node:http');
const crypto = require('node:crypto');

const trim = (u) => (u || '').replace(/\/+$/, '');
const SIM = trim(process.env.SIM_URL || 'http://127.0.0.1:8080');
const CLEVER_URL = trim(process.env.CLEVER_URL) || SIM;
const API_URL = trim(process.env.API_URL) || SIM;
const GRADES_URL = trim(process.env.GRADES_URL) || SIM;
const CLIENT_ID = process.env.CLIENT_ID || '';
const CLIENT_SECRET = process.env.CLIENT_SECRET || '';
const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.env.PORT || 5002);
let REDIRECT_URI = process.env.REDIRECT_URI || '';
// Test-only: BUGS=name,name switches on the mistakes the contract suite must catch (see
// KNOWN_BUGS); unset, the partner is correct.
const KNOWN_BUGS = new Set(['reflects_assignment_id', 'redirects_to_state_url', 'no_backoff',
  'no_retry_network_errors', 'retries_permanent_errors', 'fixed_backoff', 'il_401_gives_up',
  'district_401_gives_up',
  // Mistakes of an engineer who misread the guide (tests/test_partner_depth.py):
  'bom_in_list',              // the assignments JSON starts with a UTF-8 byte order mark
  'data_wrapper',             // {"data": [...]} instead of {"assignments": [...]}
  'empty_name',               // an assignment whose name is "" (a missing title from the DB)
  'keeps_session',            // a callback in a browser with a session skips the code: the old student stays
  'splits_state_at_colons',   // id = state.split(':')[1]: an id with a ':' is cut
  'lowercases_state_id',      // the id from state is lower-cased before the redirect
  'zero_score_skipped',       // `if (!score) return`: a score of 0 is never sent
  'first_completion_only',    // a retake of an already graded assignment is never sent
  'grade_on_launch',          // posts percentage 0 when a student opens an assignment
  'numeric_assignment_id',    // numeric ids listed as strings, sent in the grade as numbers
  'camelcase_id_keys',        // "assignmentId"/"userId" instead of assignmentID/userID
  'grade_url_trailing_slash', // POSTs to /v1/grade/ instead of /v1/grade
  'first_district_token',     // lists district tokens without &district= and takes the first
  'teacher_token_for_grade',  // grades with the teacher token the assignments request carried
  'both_score_formats',       // percentage and scoreGiven/scoreMaximum in one grade
  'internal_id_in_grade',     // the grade carries the app's internal row id, not the listed id
  'pass_fail_score',          // percentage rounded to 0 or 1
  'rounds_to_hundredths',     // percentage rounded to 2 decimals (an integer percent / 100)
  'retry_after_ms',           // Retry-After read as milliseconds
  'shared_pending_grade',     // one module-level "pending grade" for every completion
  'strict_cookie',            // the session cookie is SameSite=Strict (browsers drop it after a launch)
  'none_without_secure',      // the session cookie is SameSite=None without Secure (browsers reject it)
  'csrf_state_check',         // every callback's state must be one the app issued (Schoology's is refused)
  // Not a mistake: the suite must pass it (a browser sends Secure cookies to http://localhost)
  'secure_cookie',            // the session cookie is Secure; SameSite=None (an LTI app in an iframe)
]);
const BUGS = new Set((process.env.BUGS || '').split(',').map((b) => b.trim()).filter(Boolean));
const bug = (name) => BUGS.has(name);

const TIMEOUT_MS = 10000;
const MAX_RETRIES = 3;
const BACKOFF_MS = [150, 300, 600];  // waits before retries 1, 2, 3 (doubling)
const RETRY_AFTER_CAP_MS = 10000;
const LAUNCH_PREFIX = 'assignment:';

for (const name of BUGS) {
  if (!KNOWN_BUGS.has(name)) {
    console.error(`unknown bug ${name}; known: ${[...KNOWN_BUGS].join(', ')}`);
    process.exit(2);
  }
}
if (!CLIENT_ID || !CLIENT_SECRET) {
  console.error('set CLIENT_ID and CLIENT_SECRET');
  process.exit(2);
}

// Assignments: ids are stable, alphanumeric, short; two score formats.
const ASSIGNMENTS = [
  { id: 'ratio6rp1', name: 'Understanding Ratios', description: 'Ratios and rates in tables.',
    standards: ['CCSS.MATH.CONTENT.6.RP.A.1'], format: 'percentage' },
  { id: 'area6g1', name: 'Area of Polygons', format: 'points', max: 10 },
  { id: 'expr6ee2', name: 'Writing Expressions', description: 'Expressions with variables.',
    standards: ['CCSS.MATH.CONTENT.6.EE.A.2'], format: 'points', max: 25 },
  { id: 'read6ri1', name: 'Citing Textual Evidence', format: 'percentage' },
];
if (bug('numeric_assignment_id')) ASSIGNMENTS.forEach((a, i) => { a.id = String(1001 + i); });
const BY_ID = new Map(ASSIGNMENTS.map((a) => [a.id, a]));

const sessions = new Map();        // session id -> { id, district, token }
const districtTokens = new Map();  // district id -> district-app token
const ilTokens = new Map();        // user id -> il token of their newest login
const graded = new Set();          // bug first_completion_only: "user|assignment" already sent
let lastAssignmentsToken = null;   // bug teacher_token_for_grade
let pendingGrade = null;           // bug shared_pending_grade

const basic = () => 'Basic ' + Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function call(url, options = {}) {
  return fetch(url, { ...options, signal: AbortSignal.timeout(TIMEOUT_MS), redirect: 'manual' });
}

async function readJson(resp) {
  try { return await resp.json(); } catch { return null; }
}

// --- Clever ----------------------------------------------------------------------------

async function me(token) {
  const resp = await call(`${API_URL}/v3.0/me`, { headers: { Authorization: `Bearer ${token}` } });
  const body = await readJson(resp);
  if (resp.status !== 200 || !body || !body.data || typeof body.data.id !== 'string') return null;
  return body.data;
}

async function exchangeCode(code) {
  const resp = await call(`${CLEVER_URL}/oauth/tokens`, {
    method: 'POST',
    headers: { Authorization: basic(), 'Content-Type': 'application/json' },
    body: JSON.stringify({ code, grant_type: 'authorization_code', redirect_uri: REDIRECT_URI }),
  });
  const body = await readJson(resp);
  if (resp.status === 200 && body && typeof body.access_token === 'string') return { token: body.access_token };
  return { error: (body && (body.error_description || body.error)) || `HTTP ${resp.status}` };
}

function retryDelayMs(resp, attempt) {
  const fallback = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
  const raw = resp ? resp.headers.get('retry-after') : null;
  if (raw === null) return fallback;
  if (/^\s*\d+\s*$/.test(raw)) return Math.min(Number(raw) * (bug('retry_after_ms') ? 1 : 1000), RETRY_AFTER_CAP_MS);
  const when = Date.parse(raw);
  if (Number.isNaN(when)) return fallback;
  return Math.max(0, Math.min(when - Date.now(), RETRY_AFTER_CAP_MS));
}

// One logical request, retried on 429, 5xx and network errors (at most MAX_RETRIES times).
async function withRetries(makeRequest) {
  const tries = [];
  for (let attempt = 0; ; attempt++) {
    let resp;
    try {
      resp = await makeRequest();
    } catch (err) {
      tries.push(err.name || 'error');
      if (attempt >= MAX_RETRIES || bug('no_retry_network_errors')) {
        return { tries, error: `network error: ${err.message}` };
      }
      await sleep(retryDelayMs(null, attempt));
      continue;
    }
    tries.push(resp.status);
    // A 401 needs a new token first (sendGrade), never the same request again.
    const retryable = resp.status === 429 || resp.status >= 500
      || (bug('retries_permanent_errors') && resp.status >= 400 && resp.status !== 401);
    if (!retryable || attempt >= MAX_RETRIES) return { tries, resp };
    await resp.arrayBuffer().catch(() => null);
    let wait = retryDelayMs(resp, attempt);
    if (resp.status >= 500 && bug('no_backoff')) wait = 0;
    if (resp.status >= 500 && bug('fixed_backoff')) wait = 500;
    await sleep(wait);
  }
}

async function districtToken(districtId, refresh = false) {
  if (!refresh && districtTokens.has(districtId)) return districtTokens.get(districtId);
  const url = bug('first_district_token') ? `${CLEVER_URL}/oauth/tokens?owner_type=district`
    : `${CLEVER_URL}/oauth/tokens?owner_type=district&district=${encodeURIComponent(districtId)}`;
  const { resp } = await withRetries(() => call(url, { headers: { Authorization: basic() } }));
  const body = resp ? await readJson(resp) : null;
  const found = body && Array.isArray(body.data) ? body.data.find((t) => t && t.access_token) : null;
  if (!found) return null;
  districtTokens.set(districtId, found.access_token);
  return found.access_token;
}

function scoreFields(assignment, score) {
  if (bug('pass_fail_score')) return { percentage: Math.round(score) };
  if (bug('rounds_to_hundredths')) return { percentage: Math.round(score * 100) / 100 };
  if (bug('both_score_formats')) return { percentage: score, scoreGiven: score * 10, scoreMaximum: 10 };
  if (assignment.format === 'points') {
    return { scoreGiven: Math.round(score * assignment.max * 1e6) / 1e6, scoreMaximum: assignment.max };
  }
  return { percentage: score };
}

// --- HTTP plumbing -----------------------------------------------------------------------

function send(res, status, body, type = 'text/html; charset=utf-8', headers = {}) {
  res.writeHead(status, { 'Content-Type': type, ...headers });
  res.end(body);
}
const json = (res, status, value, headers = {}) =>
  send(res, status, JSON.stringify(value), 'application/json', headers);
const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) =>
  ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const page = (res, status, title, text = '') =>
  send(res, status, `<!doctype html><title>${escapeHtml(title)}</title><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p>`);
const redirect = (res, location, headers = {}) => {
  res.writeHead(302, { Location: location, ...headers });
  res.end();
};

function currentUser(req) {
  const cookies = Object.fromEntries((req.headers.cookie || '').split(';').map((part) => {
    const i = part.indexOf('=');
    return i < 0 ? [part.trim(), ''] : [part.slice(0, i).trim(), part.slice(i + 1).trim()];
  }));
  return sessions.get(cookies.np_session) || null;
}

function readBody(req, limit = 64 * 1024) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > limit) { reject(new Error('body too large')); req.destroy(); return; }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// --- routes ------------------------------------------------------------------------------

async function assignmentsApi(req, res) {
  const auth = req.headers.authorization || '';
  const match = /^Bearer\s+(\S+)\s*$/i.exec(auth);
  if (!match) return json(res, 401, { error: 'send Authorization: Bearer {token}' });
  const who = await me(match[1]);
  if (!who) return json(res, 401, { error: 'the bearer token is not valid' });
  lastAssignmentsToken = match[1];
  const assignments = ASSIGNMENTS.map((a, i) => {
    const item = { name: bug('empty_name') && i === 1 ? '' : a.name, id: a.id, type: 'assignment' };
    if (a.description) item.description = a.description;
    if (a.standards) item.standards = a.standards;
    return item;
  });
  if (bug('data_wrapper')) return json(res, 200, { data: assignments });
  if (bug('bom_in_list')) return send(res, 200, '\ufeff' + JSON.stringify({ assignments }), 'application/json; charset=utf-8');
  return json(res, 200, { assignments });
}

async function callback(req, res, url) {
  const code = url.searchParams.get('code');
  if (url.searchParams.get('error')) return page(res, 400, 'Login was cancelled');
  if (!code) return page(res, 400, 'Login link incomplete', 'This link has no code from Clever.');
  if (bug('csrf_state_check') && url.searchParams.has('state')) {  // "state must be ours"
    return page(res, 403, 'Login refused', 'This login did not start here (state mismatch).');
  }
  const already = currentUser(req);
  if (bug('keeps_session') && already) {  // "already logged in": the new code is never used
    const st = url.searchParams.get('state') || '';
    return redirect(res, st.startsWith(LAUNCH_PREFIX) && st.length > LAUNCH_PREFIX.length
      ? `/assignments/${encodeURIComponent(st.slice(LAUNCH_PREFIX.length))}` : '/dashboard');
  }
  const exchanged = await exchangeCode(code);
  if (!exchanged.token) return page(res, 401, 'Login failed', `Clever said: ${exchanged.error}. Start again from Schoology.`);
  const who = await me(exchanged.token);
  if (!who) return page(res, 401, 'Login failed', 'Clever did not say who you are.');
  const sid = crypto.randomBytes(24).toString('base64url');
  sessions.set(sid, { id: who.id, district: who.district, token: exchanged.token });
  ilTokens.set(who.id, exchanged.token);
  const sameSite = bug('secure_cookie') ? 'None; Secure' : bug('strict_cookie') ? 'Strict'
    : bug('none_without_secure') ? 'None' : 'Lax';
  const cookie = `np_session=${sid}; Path=/; HttpOnly; SameSite=${sameSite}`;
  const state = url.searchParams.get('state') || '';
  const wanted = state.startsWith(LAUNCH_PREFIX) ? state.slice(LAUNCH_PREFIX.length) : state;
  if (bug('redirects_to_state_url') && /^(https?:|\/\/)/.test(wanted)) {
    return redirect(res, wanted, { 'Set-Cookie': cookie });
  }
  if (state.startsWith(LAUNCH_PREFIX) && state.length > LAUNCH_PREFIX.length) {
    let id = bug('splits_state_at_colons') ? state.split(':')[1] : state.slice(LAUNCH_PREFIX.length);
    if (bug('lowercases_state_id')) id = id.toLowerCase();
    if (bug('grade_on_launch') && BY_ID.has(id)) {  // "started": a 0 until the student finishes
      await postGrade(exchanged.token, { assignmentID: id, userID: who.id, percentage: 0 });
    }
    return redirect(res, `/assignments/${encodeURIComponent(id)}`, { 'Set-Cookie': cookie });
  }
  return redirect(res, '/dashboard', { 'Set-Cookie': cookie });
}

function assignmentPage(req, res, url) {
  const user = currentUser(req);
  if (!user) return redirect(res, '/login');
  let id;
  try {
    id = decodeURIComponent(url.pathname.slice('/assignments/'.length));
  } catch {
    return page(res, 400, 'Bad assignment link');
  }
  const assignment = BY_ID.get(id);
  if (!assignment && bug('reflects_assignment_id')) {
    return send(res, 404, `<!doctype html><title>Not found</title><p>There is no assignment ${id}.</p>`);
  }
  if (!assignment) return page(res, 404, 'Assignment not found', `There is no assignment "${id}".`);
  return page(res, 200, assignment.name, `Good luck, ${user.id}!`);
}

function postGrade(token, grade) {
  const path = bug('grade_url_trailing_slash') ? '/v1/grade/' : '/v1/grade';
  return withRetries(() => call(`${GRADES_URL}${path}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(grade),
  }));
}

// With the student's il token while they are logged in, else the district-app token; after
// a 401 (the token was revoked), once more with the district-app token Clever lists now.
async function sendGrade(grade, districtId, ilToken) {
  const first = await postGrade(ilToken || await districtToken(districtId), grade);
  const givesUp = ilToken ? bug('il_401_gives_up') : bug('district_401_gives_up');
  if (!first.resp || first.resp.status !== 401 || givesUp) return first;
  await first.resp.arrayBuffer().catch(() => null);
  const fresh = await districtToken(districtId, true);
  if (!fresh) return first;
  const again = await postGrade(fresh, grade);
  return { ...again, tries: [...first.tries, ...again.tries] };
}

async function completeHook(req, res) {
  let body;
  try {
    body = JSON.parse(await readBody(req));
  } catch {
    return json(res, 400, { error: 'body must be a JSON object' });
  }
  if (!body || typeof body !== 'object') return json(res, 400, { error: 'body must be a JSON object' });
  for (const key of ['user_id', 'assignment_id', 'district_id']) {
    if (typeof body[key] !== 'string' || !body[key]) return json(res, 400, { error: `${key} must be a string` });
  }
  const score = body.score;
  if (typeof score !== 'number' || !(score >= 0 && score <= 1)) {
    return json(res, 400, { error: 'score must be a number from 0 to 1.0' });
  }
  const assignment = BY_ID.get(body.assignment_id);
  if (!assignment) return json(res, 404, { error: `unknown assignment ${body.assignment_id}` });
  if (bug('zero_score_skipped') && !score) return json(res, 200, { status: 'nothing to send' });
  const key = `${body.user_id}|${assignment.id}`;
  if (bug('first_completion_only') && graded.has(key)) return json(res, 200, { status: 'already sent' });
  const ilToken = bug('teacher_token_for_grade') ? lastAssignmentsToken : ilTokens.get(body.user_id);
  if (!ilToken && !(await districtToken(body.district_id))) {
    return json(res, 502, { error: 'no district-app token for that district' });
  }
  let grade = { assignmentID: assignment.id, userID: body.user_id, ...scoreFields(assignment, score),
                completedAt: new Date().toISOString() };
  if (bug('numeric_assignment_id')) grade.assignmentID = Number(assignment.id);
  if (bug('internal_id_in_grade')) grade.assignmentID = String(ASSIGNMENTS.indexOf(assignment) + 1);
  if (bug('camelcase_id_keys')) {
    const { assignmentID, userID, ...rest } = grade;
    grade = { assignmentId: assignmentID, userId: userID, ...rest };
  }
  if (bug('shared_pending_grade')) {  // one slot for "the grade being sent"
    pendingGrade = grade;
    await sleep(150);  // stands for saving the attempt first (a database write)
    grade = pendingGrade;
  }
  const { tries, resp, error } = await sendGrade(grade, body.district_id, ilToken);
  if (resp && resp.status >= 200 && resp.status < 300) {
    graded.add(key);
    return json(res, 200, { status: 'sent', tries, sent: grade });
  }
  const answer = resp ? await readJson(resp) : null;
  return json(res, 502, { status: 'failed', tries, error: error || answer });
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://partner.invalid');
  const path = url.pathname;
  if (req.method === 'GET' && path === '/healthz') return json(res, 200, { status: 'ok' });
  if (req.method === 'GET' && path === '/clever/assignments') return assignmentsApi(req, res);
  if (req.method === 'GET' && path === '/clever/callback') return callback(req, res, url);
  if (req.method === 'GET' && path.startsWith('/assignments/')) return assignmentPage(req, res, url);
  if (req.method === 'GET' && path === '/dashboard') {
    return currentUser(req) ? page(res, 200, 'Dashboard') : redirect(res, '/login');
  }
  if (req.method === 'GET' && (path === '/login' || path === '/')) return page(res, 200, 'Please log in with Clever');
  if (req.method === 'POST' && path === '/test-hooks/complete') return completeHook(req, res);
  return page(res, 404, 'Page not found');
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    console.error(`error on ${req.method} ${req.url}: ${err && err.stack}`);
    if (!res.headersSent) page(res, 502, 'Clever could not be reached', String(err && err.message));
    else res.end();
  });
});
server.keepAliveTimeout = 5000;
server.listen(PORT, HOST, () => {
  const { port } = server.address();
  if (!REDIRECT_URI) REDIRECT_URI = `http://${HOST}:${port}/clever/callback`;
  console.log(`listening on http://${HOST}:${port}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => { server.close(); process.exit(0); });
}
