/** Host name and domain as `hostname` and `hostname -d` give them, without running either. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { canonicalNameFromHosts, domainOf, hostIdentity } from '../../src/config/host-identity.js';
import { tempDir, writeFile } from './fixtures.js';

const HOSTS = `# static table
127.0.0.1\tlocalhost
127.0.1.1\tweb1.example.org web1   # Debian's installer writes this line
::1     localhost ip6-localhost
10.0.0.2 db.example.org db
10.0.0.3 web1-alias.other.net web1
`;

test('the canonical name is the first name on the first line naming the host', () => {
  assert.equal(canonicalNameFromHosts(HOSTS, 'web1'), 'web1.example.org');
  assert.equal(canonicalNameFromHosts(HOSTS, 'db'), 'db.example.org');
  assert.equal(canonicalNameFromHosts(HOSTS, 'localhost'), 'localhost');
  assert.equal(canonicalNameFromHosts(HOSTS, 'nothere'), undefined);
  assert.equal(canonicalNameFromHosts(HOSTS, 'static'), undefined, 'comments do not count');
});

test('the domain is what follows the first dot of the FQDN', () => {
  assert.equal(domainOf('web1.example.org'), 'example.org');
  assert.equal(domainOf('web1'), '');
});

test('hostIdentity: a short node name is completed from the hosts file', (t) => {
  const hostsFile = writeFile(tempDir(t), 'hosts', HOSTS);
  assert.deepEqual(hostIdentity({ nodename: 'web1', hostsFile }), { hostname: 'web1', fqdn: 'web1.example.org', domain: 'example.org' });
  assert.deepEqual(hostIdentity({ nodename: 'lonely', hostsFile }), { hostname: 'lonely', fqdn: 'lonely', domain: '' });
  assert.deepEqual(hostIdentity({ nodename: 'a.b.example', hostsFile }), { hostname: 'a.b.example', fqdn: 'a.b.example', domain: 'b.example' });
  assert.deepEqual(hostIdentity({ nodename: 'web1', hostsFile: '/nonexistent/hosts' }), { hostname: 'web1', fqdn: 'web1', domain: '' });
});

test('on this machine the host name is what `hostname` prints', () => {
  assert.equal(hostIdentity().hostname, execFileSync('hostname', { encoding: 'utf8' }).trim());
});
