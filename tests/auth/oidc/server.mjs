// A real OpenID Connect provider on loopback for the login tests.
// Usage: node server.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI[,REDIRECT_URI...]
// Any login name signs in (the development login form); the account's email is the login name
// itself when it holds an "@", else <login>@example.com. Logins starting with "unverified" get
// email_verified=false, and those starting with "unstated" no email_verified claim at all (as some
// issuers do). A login holding "+grp-NAME" is in the group NAME (the "groups" claim, with the
// profile scope). Prints "ready <issuer>" once it listens.
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: redirectUri.split(','),
    response_types: ['code'],
    grant_types: ['authorization_code'],
  }],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'groups'] },
  cookies: { keys: ['loopback-test-only-key'] },
  pkce: { required: () => true },
  async findAccount(ctx, id) {
    const email = id.includes('@') ? id : `${id}@example.com`;
    return {
      accountId: id,
      async claims() {
        const groups = id.split('+grp-').slice(1).map((part) => part.split('@')[0]);
        if (id.startsWith('unstated')) return { sub: id, email, name: id, groups };
        return { sub: id, email, email_verified: !id.startsWith('unverified'), name: id, groups };
      },
    };
  },
  // Skip the consent screen: the test client is trusted with the scopes it asks for.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile');
    await grant.save();
    return grant;
  },
});

const server = provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
