import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Pod IPs from a loopback range (Linux routes all of 127.0.0.0/8 to `lo`, so any address in it can
 * be bound without set-up). Addresses are handed out round-robin, so a freed one is reused as late
 * as possible, like a CNI's IPAM; 127.0.0.1 and addresses ending in .0 or .255 are never used.
 */
export class AddressPool {
  private readonly first: number;
  private readonly last: number;
  private next: number;
  private readonly inUse = new Set<number>();

  /** `prefix`: a CIDR ("127.1.0.0/16") or leading octets ("127.1" = 127.1.0.0/16, "127.0.20" = /24). */
  constructor(prefix: string) {
    const [base, bitsText] = prefix.includes('/') ? prefix.split('/') : [prefix, undefined];
    const octets = base!.split('.').filter((o) => o !== '');
    if (
      octets.length < 1 ||
      octets.length > 4 ||
      octets.some((o) => !/^\d{1,3}$/.test(o) || Number(o) > 255)
    ) {
      throw new Error(`invalid address prefix "${prefix}"`);
    }
    const bits = bitsText === undefined ? octets.length * 8 : Number(bitsText);
    if (!Number.isInteger(bits) || bits < 8 || bits > 30)
      throw new Error(`invalid address prefix "${prefix}"`);
    while (octets.length < 4) octets.push('0');
    const value = octets.reduce((acc, o) => acc * 256 + Number(o), 0);
    const size = 2 ** (32 - bits);
    this.first = value - (value % size);
    this.last = this.first + size - 1;
    if (Math.floor(this.first / 2 ** 24) !== 127)
      throw new Error(`address prefix "${prefix}" is not in 127.0.0.0/8`);
    this.next = this.first;
  }

  /** The range as a CIDR, e.g. "127.1.0.0/16". */
  get cidr(): string {
    const bits = 32 - Math.log2(this.last - this.first + 1);
    return `${AddressPool.format(this.first)}/${bits}`;
  }

  /**
   * Two kubelets handing out the same addresses would start pods on each other's IPs (EADDRINUSE at
   * best): a lock file per range, holding the owner's pid, makes the second one fail at start.
   */
  lock(): () => void {
    const file = join(tmpdir(), `mq-test-kubelet-${this.cidr.replace(/[./]/g, '_')}.lock`);
    if (heldRanges.has(file)) throw new Error(`address range ${this.cidr} is already used by a test kubelet`);
    let owner: number | undefined;
    try {
      owner = Number(readFileSync(file, 'utf8').trim());
    } catch {
      // no lock yet
    }
    if (owner && owner !== process.pid && alive(owner)) {
      throw new Error(`address range ${this.cidr} is already used by a test kubelet in process ${owner}`);
    }
    writeFileSync(file, String(process.pid));
    heldRanges.add(file);
    return () => {
      heldRanges.delete(file);
      rmSync(file, { force: true });
    };
  }

  private static format(n: number): string {
    return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
  }

  private static parse(ip: string): number | undefined {
    const o = ip.split('.');
    if (o.length !== 4 || o.some((x) => !/^\d{1,3}$/.test(x) || Number(x) > 255)) return undefined;
    return o.reduce((acc, x) => acc * 256 + Number(x), 0);
  }

  private usable(n: number): boolean {
    const lastOctet = n % 256;
    return n >= this.first && n <= this.last && lastOctet !== 0 && lastOctet !== 255 && n !== 0x7f000001;
  }

  allocate(): string {
    const size = this.last - this.first + 1;
    for (let i = 0; i < size; i++) {
      this.next = this.next >= this.last ? this.first : this.next + 1;
      if (this.usable(this.next) && !this.inUse.has(this.next)) {
        this.inUse.add(this.next);
        return AddressPool.format(this.next);
      }
    }
    throw new Error('no free pod address left');
  }

  /** Takes a specific address (a pod that already had one); false if it is not ours or taken. */
  claim(ip: string): boolean {
    const n = AddressPool.parse(ip);
    if (n === undefined || !this.usable(n) || this.inUse.has(n)) return false;
    this.inUse.add(n);
    return true;
  }

  release(ip: string): void {
    const n = AddressPool.parse(ip);
    if (n !== undefined) this.inUse.delete(n);
  }
}

const heldRanges = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
