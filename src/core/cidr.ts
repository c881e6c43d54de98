/**
 * @module core/cidr
 * IPv4/IPv6 addresses and CIDR ranges: parsed strictly (a malformed prefix is an error, never "/0"), and
 * matched with node's BlockList. Used for trusted proxies and by ip-restriction.
 */
import { BlockList, isIP } from 'node:net';

/** A rule as written, worked out; or why it is refused. */
export interface Rule {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** IPv4-mapped IPv6 addresses (::ffff:a.b.c.d): the form a dual-stack socket gives IPv4 clients. */
const MAPPED = new BlockList();
MAPPED.addSubnet('::ffff:0:0', 96, 'ipv6');

/** Parse "address" or "address/prefix"; a zone ("%eth0") or a prefix out of range is refused. */
export function parseRule(text: string): Rule | string {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const family = isIP(address);
  if (family === 0 || address.includes('%')) return 'is not an IPv4 or IPv6 address or CIDR range';
  const max = family === 4 ? 32 : 128;
  let prefix = max;
  if (slash !== -1) {
    const bits = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return `has a prefix length that is not 0 to ${max}`;
    prefix = Number(bits);
  }
  return { address, prefix, family: family === 4 ? 'ipv4' : 'ipv6' };
}

/**
 * The rules compiled into two lists. IPv4 clients (also when seen as ::ffff:a.b.c.d) are matched against the
 * IPv4 rules and the ::ffff:0:0/96 ones; other IPv6 clients against the IPv6 rules. So "::/0" means every
 * IPv6 client and does not silently take in every IPv4 one.
 */
export class AddressMatcher {
  private readonly v4 = new BlockList();
  private readonly v6 = new BlockList();

  constructor(rules: Rule[]) {
    for (const r of rules) {
      // node's BlockList matches an IPv4-mapped rule against IPv4 addresses and the other way round.
      if (r.family === 'ipv4' || (r.prefix >= 96 && MAPPED.check(r.address, 'ipv6'))) this.v4.addSubnet(r.address, r.prefix, r.family);
      else this.v6.addSubnet(r.address, r.prefix, r.family);
    }
  }

  /** HOT PATH: whether the address is listed; null when it is not an IP address at all. */
  has(ip: string): boolean | null {
    // The common dual-stack form first, without the general checks.
    if (ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4) return this.v4.check(ip.slice(7), 'ipv4');
    const family = isIP(ip);
    if (family === 4) return this.v4.check(ip, 'ipv4');
    if (family === 6) return MAPPED.check(ip, 'ipv6') ? this.v4.check(ip, 'ipv6') : this.v6.check(ip, 'ipv6');
    return null;
  }
}

