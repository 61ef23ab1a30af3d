/**
 * The kdump initramfs kdumpctl builds (mkdumprd's job): a cpio "newc"
 * archive (the format the kernel's initramfs unpacker reads: "070701",
 * 13 eight-digit hex fields, the name, data, each padded to 4 bytes, then
 * "TRAILER!!!"), holding the kdump configuration the capture kernel uses.
 */
const NEWC_MAGIC = '070701';
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;

export interface CpioEntry {
  name: string;
  mode: number;
  data: Uint8Array;
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/** Encodes entries (and the trailer) as a newc archive; mtime 0 so the bytes depend on content alone. */
export function cpioNewc(entries: readonly CpioEntry[]): Uint8Array {
  const parts: Buffer[] = [];
  const all = [...entries, { name: 'TRAILER!!!', mode: 0, data: new Uint8Array(0) }];
  all.forEach((e, i) => {
    const name = Buffer.from(`${e.name}\0`, 'latin1');
    const fields = [i + 1, e.mode, 0, 0, 1, 0, e.data.length, 0, 0, 0, 0, name.length, 0];
    const header = Buffer.from(NEWC_MAGIC + fields.map(hex8).join(''), 'latin1');
    parts.push(header, name, Buffer.alloc(pad4(header.length + name.length)), Buffer.from(e.data), Buffer.alloc(pad4(e.data.length)));
  });
  return Buffer.concat(parts);
}

/** The kdump initramfs: the configuration files, and an init that says what runs the save. */
export function kdumpInitramfs(kdumpConf: string, sysconfig: string): Uint8Array {
  const init = '#!/bin/sh\n# lkcd-softboot kdump initramfs: in the capture kernel, `kdumpctl save` plays kdump.sh\n# (dracut/99kdumpbase) with etc/kdump.conf below.\n';
  return cpioNewc([
    { name: 'etc', mode: S_IFDIR | 0o755, data: new Uint8Array(0) },
    { name: 'etc/kdump.conf', mode: S_IFREG | 0o644, data: Buffer.from(kdumpConf) },
    { name: 'etc/sysconfig', mode: S_IFDIR | 0o755, data: new Uint8Array(0) },
    { name: 'etc/sysconfig/kdump', mode: S_IFREG | 0o644, data: Buffer.from(sysconfig) },
    { name: 'init', mode: S_IFREG | 0o755, data: Buffer.from(init) },
  ]);
}
