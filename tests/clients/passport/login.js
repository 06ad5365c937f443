// passport-clever, unchanged but for its base URLs, run against clever-sim one request at a time:
//   node login.js authorize          -> {"status", "location"}: where passport sends the browser
//   node login.js callback URL       -> {"error"|"user", "requests"}: the callback request, which
//                                       exchanges the code and loads the profile
// Environment: SIM (simulator base URL), CLIENT_ID, CLIENT_SECRET, CALLBACK (the redirect URI).
// The requests go through passport.authenticate exactly as an Express route would call it.
'use strict';

const path = require('path');

const SIM = process.env.SIM;
const libDir = path.dirname(require.resolve('passport-clever'));
const requests = [];

// Base URLs: the strategy's profile calls name https://api.clever.com inside its code, so the
// base is swapped where node-fetch sends them (path and query untouched); every URL is logged.
const fetchPath = require.resolve('node-fetch', { paths: [libDir] });
const realFetch = require(fetchPath);
function rebasedFetch(url, options) {
  const target = String(url).replace(/^https:\/\/api\.clever\.com/, SIM);
  if (!target.startsWith(SIM)) throw new Error('request outside the simulator: ' + url);
  return realFetch(target, options).then((res) => {
    requests.push({ url: target.slice(SIM.length), status: res.status });
    return res;
  });
}
Object.assign(rebasedFetch, realFetch);
require.cache[fetchPath].exports = rebasedFetch;

// Shim for a bug in passport-clever 1.0.2: its token exchange calls a global `Base64` that it
// never defines (js-base64, its own dependency, is never required). One line, no logic changed.
globalThis.Base64 = require(require.resolve('js-base64', { paths: [libDir] })).Base64;

const passport = require('passport');
const CleverStrategy = require('passport-clever');

passport.use(new CleverStrategy({
  clientID: process.env.CLIENT_ID,
  clientSecret: process.env.CLIENT_SECRET,
  callbackURL: process.env.CALLBACK,
  authorizationURL: SIM + '/oauth/authorize',
  tokenURL: SIM + '/oauth/tokens',
}, (accessToken, refreshToken, profile, done) => done(null, profile)));

function handle(url) {
  const query = Object.fromEntries(new URL(url, 'http://partner.test').searchParams);
  const req = { method: 'GET', url, query, headers: { host: 'partner.test' }, connection: {} };
  const headers = {};
  const res = {
    statusCode: 200,
    setHeader: (name, value) => { headers[name.toLowerCase()] = value; },
    end: () => report({ status: res.statusCode, location: headers.location }),
  };
  passport.authenticate('clever', { session: false }, (err, user, info) => {
    report(err ? { error: String(err && (err.message || err)), requests }
               : { user: user || null, info: info || null, requests });
  })(req, res, (err) => report({ error: String(err), requests }));
}

let reported = false;
function report(answer) {
  if (reported) return; // passport-clever may call done twice (a failed section lookup)
  reported = true;
  process.stdout.write(JSON.stringify(answer) + '\n');
}

const [command, url] = process.argv.slice(2);
if (command === 'authorize') handle('/auth/clever');
else if (command === 'callback') handle(url);
else { console.error('usage: node login.js authorize | callback URL'); process.exit(2); }
