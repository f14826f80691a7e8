// Runs the npm etcd3 client (its KV, txn, lease, watch, lock, election,
// STM and maintenance APIs) against one server and prints what it saw as
// one JSON object on stdout, with what differs between any two servers
// (IDs, terms, versions) left out, so that tests/e2e can compare etcd's
// answers with Cairn's. Usage:
//   node client.js ENDPOINT [CA CERT KEY]
// ENDPOINT is host:port; with the three PEM files the connection is TLS
// with a client certificate.
'use strict';
const fs = require('fs');
const { Etcd3 } = require('etcd3');
const { noop } = require('cockatiel');

const [endpoint, ca, cert, key] = process.argv.slice(2);
// No retries and no circuit breaker: every answer is the server's own.
const options = { hosts: (ca ? 'https://' : 'http://') + endpoint, faultHandling: { host: () => noop, global: noop } };
if (ca) {
  options.credentials = {
    rootCertificate: fs.readFileSync(ca),
    certChain: fs.readFileSync(cert),
    privateKey: fs.readFileSync(key),
  };
}
const client = new Etcd3(options);
const out = {};

// kv keeps what both servers must agree on of a KeyValue.
const kv = (k) => k && {
  key: k.key.toString(), value: k.value.toString(),
  create_revision: k.create_revision, mod_revision: k.mod_revision, version: k.version,
  lease: k.lease === '0' ? '0' : 'set',
};
const errorOf = (err) => ({ error: err.constructor.name, message: err.message });
const settle = async (p) => { try { return await p; } catch (err) { return errorOf(err); } };

async function main() {
  const put = await client.put('foo').value('bar');
  out.put = { revision: put.header.revision };
  out.putPrev = kv((await client.put('foo').value('bar2').getPrevious()));
  out.get = await client.get('foo').string();
  out.getMissing = await client.get('nope').string();
  for (const k of ['dir/a', 'dir/b', 'dir/c']) await client.put(k).value(k.toUpperCase());
  out.prefix = await client.getAll().prefix('dir/').strings();
  out.prefixDesc = await client.getAll().prefix('dir/').sort('Key', 'Descend').limit(2).keys();
  out.count = await client.getAll().prefix('dir/').count();
  out.range = (await client.getAll().prefix('dir/').exec()).kvs.map(kv);
  out.atRevision = await client.get('foo').revision(put.header.revision).string();

  const yes = await client.if('foo', 'Value', '==', 'bar2').then(client.put('foo').value('baz')).else(client.get('foo')).commit();
  out.txnYes = { succeeded: yes.succeeded, responses: yes.responses.map((r) => r.response) };
  const no = await client.if('foo', 'Version', '>', 10).then(client.put('foo').value('never')).else(client.get('foo')).commit();
  out.txnNo = { succeeded: no.succeeded, got: no.responses[0].response_range.kvs.map(kv) };

  const leased = client.lease(30, { autoKeepAlive: false });
  await leased.grant();
  await leased.put('leased').value('x');
  const ttl = await client.leaseClient.leaseTimeToLive({ ID: await leased.grant(), keys: true });
  out.leaseTTL = { ttlNear30: Number(ttl.TTL) > 25 && Number(ttl.TTL) <= 30, granted: ttl.grantedTTL, keys: ttl.keys.map(String) };
  out.leaseKeys = (await client.getAll().prefix('leased').exec()).kvs.map(kv);
  await leased.keepaliveOnce();
  await leased.revoke();
  out.afterRevoke = await client.get('leased').string();

  const watcher = await client.watch().key('w').create();
  const events = [];
  const seen = new Promise((resolve) => {
    watcher.on('put', (k) => { events.push(['put', k.value.toString()]); if (events.length === 3) resolve(); });
    watcher.on('delete', () => { events.push(['delete']); if (events.length === 3) resolve(); });
  });
  await client.put('w').value('1');
  await client.put('w').value('2');
  await client.delete().key('w');
  await seen;
  await watcher.cancel();
  out.watch = events;
  const prefixWatcher = await client.watch().prefix('dir/').startRevision('1').create();
  const replayed = await new Promise((resolve) => {
    const got = [];
    prefixWatcher.on('put', (k) => { got.push(k.key.toString()); if (got.length === 3) resolve(got); });
  });
  await prefixWatcher.cancel();
  out.watchReplay = replayed;

  const lock = client.lock('the-lock');
  await lock.acquire();
  out.lockHeld = (await settle(client.lock('the-lock').acquire())).error || 'acquired twice';
  await lock.release();
  const again = await client.lock('the-lock').acquire();
  await again.release();
  out.lockAgain = 'acquired';

  const election = client.election('the-election');
  const campaign = election.campaign('first');
  await campaign.wait();
  out.leader = await election.leader();
  await campaign.proclaim('proclaimed');
  out.proclaimed = await election.leader();
  await campaign.resign();
  out.afterResign = (await election.leader()) || null;

  out.stm = await client.stm().transact((tx) => tx.get('dir/a').then((v) => tx.put('dir/a').value(v + '!')));
  out.stmAfter = await client.get('dir/a').string();

  out.deleted = (await client.delete().prefix('dir/').getPrevious()).map(kv);
  out.compact = (await settle(client.get('foo').revision('1').exec())).error ? 'error' : 'ok';
  await client.kv.compact({ revision: String(Number(put.header.revision) + 1) });
  out.compacted = await settle(client.get('foo').revision('1').string());
  out.futureRevision = await settle(client.get('foo').revision('100000').string());
  out.emptyKey = await settle(client.put('').value('x'));
  out.tooBig = await settle(client.put('big').value(Buffer.alloc(2 * 1024 * 1024)));

  const status = await client.maintenance.status({});
  out.status = { hasLeader: status.leader !== '0', dbSizePositive: Number(status.dbSize) > 0 };
  out.members = (await client.cluster.memberList({})).members.length;
}

main()
  .then(() => { console.log(JSON.stringify(out)); client.close(); })
  .catch((err) => { console.error(err); client.close(); process.exit(1); });
