/**
 * Byte-level field types. Every field reads and writes at an offset inside
 * a caller's DataView, little-endian (x86_64) unless its name says be
 * (device firmware structures); byte order is never left to a default.
 */
export interface Field<T> {
  readonly size: number;
  /** Name of the C type, for Kerntypes and error messages. */
  readonly ctype: string;
  get(view: DataView, offset: number): T;
  set(view: DataView, offset: number, value: T): void;
}

export const u8: Field<number> = {
  size: 1, ctype: 'u8',
  get: (v, o) => v.getUint8(o),
  set: (v, o, x) => v.setUint8(o, x),
};
export const u16: Field<number> = {
  size: 2, ctype: 'u16',
  get: (v, o) => v.getUint16(o, true),
  set: (v, o, x) => v.setUint16(o, x, true),
};
export const u32: Field<number> = {
  size: 4, ctype: 'u32',
  get: (v, o) => v.getUint32(o, true),
  set: (v, o, x) => v.setUint32(o, x, true),
};
export const i32: Field<number> = {
  size: 4, ctype: 's32',
  get: (v, o) => v.getInt32(o, true),
  set: (v, o, x) => v.setInt32(o, x, true),
};
export const u64: Field<bigint> = {
  size: 8, ctype: 'u64',
  get: (v, o) => v.getBigUint64(o, true),
  set: (v, o, x) => v.setBigUint64(o, BigInt.asUintN(64, x), true),
};
export const i64: Field<bigint> = {
  size: 8, ctype: 's64',
  get: (v, o) => v.getBigInt64(o, true),
  set: (v, o, x) => v.setBigInt64(o, BigInt.asIntN(64, x), true),
};

/** Big-endian fields (__be16, __be32, __be64): device firmware structures that the hardware keeps in network order. */
export const be16: Field<number> = {
  size: 2, ctype: '__be16',
  get: (v, o) => v.getUint16(o, false),
  set: (v, o, x) => v.setUint16(o, x, false),
};
export const be32: Field<number> = {
  size: 4, ctype: '__be32',
  get: (v, o) => v.getUint32(o, false),
  set: (v, o, x) => v.setUint32(o, x, false),
};
export const be64: Field<bigint> = {
  size: 8, ctype: '__be64',
  get: (v, o) => v.getBigUint64(o, false),
  set: (v, o, x) => v.setBigUint64(o, BigInt.asUintN(64, x), false),
};

/** Raw bytes of a fixed length (copied out on read). */
export function bytes(n: number): Field<Uint8Array> {
  return {
    size: n, ctype: `u8[${n}]`,
    get: (v, o) => new Uint8Array(v.buffer.slice(v.byteOffset + o, v.byteOffset + o + n)),
    set: (v, o, x) => {
      const dst = new Uint8Array(v.buffer, v.byteOffset + o, n);
      dst.fill(0);
      dst.set(x.subarray(0, n));
    },
  };
}

/**
 * A NUL-padded C string of `n` bytes (char name[n]). Encoding truncates to
 * n-1 bytes so the field always holds its terminating NUL, as strscpy does;
 * decoding stops at the first NUL.
 */
export function cstring(n: number): Field<string> {
  return {
    size: n, ctype: `char[${n}]`,
    get: (v, o) => {
      const raw = new Uint8Array(v.buffer, v.byteOffset + o, n);
      const end = raw.indexOf(0);
      return Buffer.from(raw.subarray(0, end < 0 ? n : end)).toString('latin1');
    },
    set: (v, o, x) => {
      const dst = new Uint8Array(v.buffer, v.byteOffset + o, n);
      dst.fill(0);
      const src = Buffer.from(x, 'latin1');
      dst.set(src.subarray(0, n - 1));
    },
  };
}

/** A fixed-length array of one field type. */
export function array<T>(item: Field<T>, count: number): Field<T[]> {
  return {
    size: item.size * count, ctype: `${item.ctype}[${count}]`,
    get: (v, o) => Array.from({ length: count }, (_, i) => item.get(v, o + i * item.size)),
    set: (v, o, x) => {
      for (let i = 0; i < count; i++) item.set(v, o + i * item.size, x[i]);
    },
  };
}

/**
 * A 64-bit pointer: a u64 to the codec, `T *` to C (the debug vmlinux and
 * Kerntypes say what it points to). `target` is a C type such as
 * 'struct task_struct' or 'void'.
 */
export function ptr(target: string): Field<bigint> {
  return { ...u64, ctype: `${target} *` };
}

/**
 * The same bytes under the C type the kernel declares them with (a typedef
 * such as `pgoff_t` or `atomic_t`, an enum, `unsigned long`): the codec is
 * unchanged, only what the debug info calls the field.
 */
export function ctyped<T>(field: Field<T>, ctype: string): Field<T> {
  return { ...field, ctype };
}

/** One C bitfield inside a storage unit, least significant bits first (x86_64 gcc). */
export interface BitMember { readonly name: string; readonly bits: number }

/** A storage unit whose C declaration is a run of bitfields (`u8 flags:5, level:3`). */
export interface BitfieldUnit<T> extends Field<T> {
  readonly bitfields: readonly BitMember[];
}

/**
 * A field the codec reads as one unsigned unit (`unit`) and C declares as
 * bitfields of that type, filled from the least significant bit as gcc does
 * on x86_64. The members must fill the unit exactly.
 */
export function bitfields(unit: Field<number>, members: readonly BitMember[]): BitfieldUnit<number> {
  const total = members.reduce((n, m) => n + m.bits, 0);
  if (total !== unit.size * 8 || members.some((m) => !Number.isInteger(m.bits) || m.bits < 1)) {
    throw new RangeError(`bitfields ${members.map((m) => `${m.name}:${m.bits}`).join(', ')} do not fill a ${unit.ctype}`);
  }
  return { ...unit, bitfields: members };
}
