import { TruncatedError } from './errors.js';
import type { BitMember, Field } from './field.js';

type FieldMap = Record<string, Field<unknown>>;
type ValueOfFields<F extends FieldMap> = { [K in keyof F]: F[K] extends Field<infer T> ? T : never };

/** Offsets and size of a C struct, recorded once from its field list. */
export interface StructLayout {
  readonly name: string;
  readonly size: number;
  readonly fields: ReadonlyArray<StructFieldLayout>;
}

/** One member: offset and size in bytes, its C type, and the C bitfields it holds, if any. */
export interface StructFieldLayout {
  name: string;
  offset: number;
  size: number;
  ctype: string;
  bitfields?: readonly BitMember[];
}

export interface Struct<F extends FieldMap> extends Field<ValueOfFields<F>>, StructLayout {
  /** Byte offset of each field from the start of the struct. */
  readonly offsetOf: { readonly [K in keyof F]: number };
  /** Decodes at `offset`, checking bounds first; names the field that ran short. */
  decode(view: DataView, offset?: number): ValueOfFields<F>;
  /** Encodes at `offset` and returns the end offset. */
  encode(value: ValueOfFields<F>, view: DataView, offset?: number): number;
  /** A zero-filled value of the struct. */
  zero(): ValueOfFields<F>;
  /** Encodes into a new buffer of exactly `size` bytes. */
  toBytes(value: ValueOfFields<F>): Uint8Array;
  fromBytes(bytes: Uint8Array, offset?: number): ValueOfFields<F>;
}

/** The value type a struct codec decodes to (ssz's ValueOf). */
export type ValueOf<S> = S extends Struct<infer F> ? ValueOfFields<F> : S extends Field<infer T> ? T : never;

/** A DataView over exactly the bytes of `u8`, never its whole backing buffer. */
export function viewOf(u8: Uint8Array): DataView {
  return new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
}

/**
 * Declares a packed C struct. Fields are laid out in order with no implicit
 * padding: padding is written as an explicit field, so the offsets are the
 * ones the C compiler produced for the mirrored header.
 */
export function defineStruct<F extends FieldMap>(name: string, fields: F): Struct<F> {
  const entries: Array<{ name: string; offset: number; size: number; ctype: string; field: Field<unknown> }> = [];
  let size = 0;
  const offsetOf: Record<string, number> = {};
  for (const [fname, field] of Object.entries(fields)) {
    entries.push({ name: fname, offset: size, size: field.size, ctype: field.ctype, field });
    offsetOf[fname] = size;
    size += field.size;
  }
  const decode = (view: DataView, offset = 0): ValueOfFields<F> => {
    const out: Record<string, unknown> = {};
    for (const e of entries) {
      const at = offset + e.offset;
      if (at + e.size > view.byteLength) {
        throw new TruncatedError(
          `${name}.${e.name}: expected ${e.size} bytes, have ${Math.max(0, view.byteLength - at)}`,
          { struct: name, field: e.name, offset: at },
        );
      }
      out[e.name] = e.field.get(view, at);
    }
    return out as ValueOfFields<F>;
  };
  const encode = (value: ValueOfFields<F>, view: DataView, offset = 0): number => {
    if (offset + size > view.byteLength) {
      throw new TruncatedError(`${name}: need ${size} bytes at offset ${offset}, buffer has ${view.byteLength}`,
        { struct: name, offset });
    }
    for (const e of entries) e.field.set(view, offset + e.offset, (value as Record<string, unknown>)[e.name]);
    return offset + size;
  };
  const struct: Struct<F> = {
    name,
    size,
    ctype: `struct ${name}`,
    fields: entries.map(({ name: n, offset, size: s, ctype, field }) => {
      const bits = (field as { bitfields?: readonly BitMember[] }).bitfields;
      return bits ? { name: n, offset, size: s, ctype, bitfields: bits } : { name: n, offset, size: s, ctype };
    }),
    offsetOf: offsetOf as { [K in keyof F]: number },
    get: (v, o) => decode(v, o),
    set: (v, o, x) => { encode(x, v, o); },
    decode,
    encode,
    zero: () => decode(new DataView(new ArrayBuffer(size))),
    toBytes: (value) => {
      const buf = new Uint8Array(size);
      encode(value, viewOf(buf));
      return buf;
    },
    fromBytes: (bytes, offset = 0) => decode(viewOf(bytes), offset),
  };
  return struct;
}
