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
