// A real OIDC token issuer on loopback for the service tests (started by tests/oidc_issuer.py).
// oauth2-mock-server signs with a fresh RSA key and serves discovery, JWKS and the token
// endpoint. Access tokens from the client-credentials grant get, besides the issuer's own claims
// (iss, iat, exp, nbf, scope, aud from the request):
//   sub and preferred_username: the client id (HTTP basic auth name or client_id)
//   groups: the request's "groups" (comma-separated), when given
//   exp / nbf moved by the request's "exp_in" / "nbf_in" seconds, iss replaced by the request's
//   "iss" (tests of expired, not-yet-valid and foreign tokens, still signed by this issuer's key)
// Prints one line "ISSUER <url>" once it listens; stops on SIGTERM or when stdin closes.
import { OAuth2Server, Events } from 'oauth2-mock-server';

const server = new OAuth2Server();
// the signing algorithm: RS256 unless ISSUER_ALG says otherwise (ES256, PS256, ...)
await server.issuer.keys.generate(process.env.ISSUER_ALG || 'RS256');

server.service.on(Events.BeforeTokenSigning, (token, req) => {
  const body = req.body ?? {};
  let client = body.client_id;
  const auth = req.headers.authorization ?? '';
  if (auth.toLowerCase().startsWith('basic ')) {
    client = Buffer.from(auth.slice(6), 'base64').toString().split(':')[0];
  }
  if (client) {
    token.payload.sub = client;
    token.payload.preferred_username = client;
  }
  if (body.groups) token.payload.groups = String(body.groups).split(',').filter(Boolean);
  const now = Math.floor(Date.now() / 1000);
  if (body.exp_in !== undefined) token.payload.exp = now + Number(body.exp_in);
  if (body.nbf_in !== undefined) token.payload.nbf = now + Number(body.nbf_in);
  if (body.iss !== undefined) token.payload.iss = String(body.iss);
  const grant = grantOf(body);
  if (grant) {  // a user's login (authorization code) or its refresh
    token.payload.sub = grant.user;
    token.payload.preferred_username = grant.user;
    if (token.payload.aud === undefined) {  // the access token (the id token's aud is the client)
      token.payload.aud = [AUDIENCE, client];
      token.payload.scope = grant.scope;
      if (lifetimes.has(grant.user)) token.payload.exp = token.payload.iat + lifetimes.get(grant.user);
    }
  }
});

// The authorization-code flow (JupyterHub's login): GET /test/login?user=NAME is the IdP's login
// page (it sets the cookie mock_user=NAME, then shows who is logged in; &ttl=S makes that user's
// access tokens live S seconds); /authorize gives a code
// to the logged-in user only (error=login_required without the cookie). The tokens of that code,
// and of its refresh tokens, are the user's: sub and preferred_username NAME, aud [AUD, client]
// (AUD: $ISSUER_AUDIENCE, default mlaas4hep), scope as asked at /authorize. /userinfo answers
// the user of the bearer token.
const AUDIENCE = process.env.ISSUER_AUDIENCE || 'mlaas4hep';
const codes = new Map();    // code -> {user, scope}
const refresh = new Map();  // refresh token -> {user, scope}
const cookieUser = (req) => {
  const match = /(?:^|;\s*)mock_user=([A-Za-z0-9_.-]+)/.exec(req.headers.cookie ?? '');
  return match ? match[1] : null;
};
const grantOf = (body) => body.grant_type === 'authorization_code' ? codes.get(body.code)
  : body.grant_type === 'refresh_token' ? refresh.get(body.refresh_token) : undefined;

const lifetimes = new Map();  // user -> access token lifetime in seconds (GET /test/login?ttl=)
server.service.addRoute('GET', '/test/login', (req, res) => {
  const query = new URL(req.url, 'http://x').searchParams;
  const user = query.get('user') ?? '';
  if (!/^[A-Za-z0-9_.-]+$/.test(user)) { res.statusCode = 400; res.end('bad user'); return; }
  if (query.get('ttl')) lifetimes.set(user, Number(query.get('ttl')));
  res.setHeader('Set-Cookie', `mock_user=${user}; Path=/; HttpOnly; SameSite=Lax`);
  res.setHeader('Content-Type', 'text/html');
  res.end(`<html><body><p id="who">logged in at the IdP as ${user}</p></body></html>`);
});

server.service.on(Events.BeforeAuthorizeRedirect, (redirect, req) => {
  const user = cookieUser(req);
  const code = redirect.url.searchParams.get('code');
  if (!user) {
    redirect.url.searchParams.delete('code');
    redirect.url.searchParams.set('error', 'login_required');
    return;
  }
  const scope = new URL(req.url, 'http://x').searchParams.get('scope') ?? 'openid';
  if (code) codes.set(code, { user, scope });
});

server.service.on(Events.BeforeResponse, (response, req) => {
  const grant = grantOf(req.body ?? {});
  if (grant && response.body.refresh_token) refresh.set(response.body.refresh_token, grant);
  if (grant) response.body.scope = grant.scope;
  if (grant && lifetimes.has(grant.user)) response.body.expires_in = lifetimes.get(grant.user);
});

server.service.on(Events.BeforeUserinfo, (response, req) => {
  const auth = req.headers.authorization ?? '';
  try {
    const payload = JSON.parse(Buffer.from(auth.split(' ')[1].split('.')[1], 'base64url').toString());
    if (payload.exp <= Date.now() / 1000) throw new Error('expired');
    response.body = { sub: payload.sub, preferred_username: payload.preferred_username, name: payload.sub };
  } catch {
    response.statusCode = 401;
    response.body = { error: 'invalid_token' };
  }
});

// key rotation on request: a new signing key is published; tokens are signed with the keys in
// turn (round robin), so the next token or the one after it carries the new kid
server.service.addRoute('POST', '/test/rotate', async (req, res) => {
  const key = // the signing algorithm: RS256 unless ISSUER_ALG says otherwise (ES256, PS256, ...)
await server.issuer.keys.generate(process.env.ISSUER_ALG || 'RS256');
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify({ kid: key.kid }));
});

await server.start(0, '127.0.0.1');
// the address it listens on, not "localhost" (which may resolve to ::1 first)
server.issuer.url = `http://127.0.0.1:${server.address().port}`;
process.stdout.write(`ISSUER ${server.issuer.url}\n`);

const stop = async () => { await server.stop(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();
