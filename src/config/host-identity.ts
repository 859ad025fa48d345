/**
 * The host's name and DNS domain, as the old config obtained them with
 * `` HOSTN=`/bin/hostname` `` and `` DOMAINN=`/bin/hostname -d` ``, computed
 * without running anything so that loading the config stays synchronous and
 * side-effect free.
 *
 * `hostname` prints the kernel's node name (os.hostname()). `hostname -d`
 * resolves that name and prints what follows the first dot of the canonical
 * name (the FQDN), or nothing. We resolve the same way the C library does for
 * the usual `hosts: files dns` setup, minus DNS: a node name that already
 * contains a dot is its own FQDN; otherwise the first /etc/hosts line naming
 * it gives the canonical name (its first name). No dot anywhere: empty domain.
 */
import { readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';

export interface HostIdentity {
  /** What `hostname` prints: the kernel's node name. */
  hostname: string;
  /** What `hostname -f` prints (best effort, no DNS): the canonical name. */
  fqdn: string;
  /** What `hostname -d` prints: the FQDN after its first dot, or ''. */
  domain: string;
}

/** Canonical name for `name` in hosts-file text, or undefined when no line names it. */
export function canonicalNameFromHosts(hostsText: string, name: string): string | undefined {
  for (const rawLine of hostsText.split('\n')) {
    const line = rawLine.replace(/#.*/, '').trim();
    if (line === '') continue;
    const [, ...names] = line.split(/\s+/);
    if (names.includes(name)) return names[0];
  }
  return undefined;
}

export function domainOf(fqdn: string): string {
  const dot = fqdn.indexOf('.');
  return dot < 0 ? '' : fqdn.slice(dot + 1);
}

export function hostIdentity(opts: { nodename?: string; hostsFile?: string } = {}): HostIdentity {
  const hostname = opts.nodename ?? osHostname();
  let fqdn = hostname;
  if (!hostname.includes('.')) {
    try {
      fqdn = canonicalNameFromHosts(readFileSync(opts.hostsFile ?? '/etc/hosts', 'utf8'), hostname) ?? hostname;
    } catch {
      // no readable hosts file: hostname -d would fall back to DNS, which we do not query
    }
  }
  return { hostname, fqdn, domain: domainOf(fqdn) };
}
