/**
 * A device's hardware file, lib/machine/devices/<bdf>: its image
 * (image.ts) deflated, with the payload regions left out (zeroed before
 * deflating; the model regenerates them from `seed` and `generation`), so
 * a NIC with megabytes of on-chip memory costs the machine tens of KiB.
 * The payload ranges come from the model (the NIC's registers name them).
 *
 *   simdev_state  32 bytes: magic "SIMDEVST", version, seed, generation, image size, deflated size, CRC32
 *   deflate(image)
 */
import zlib from 'node:zlib';
import { bytes, CorruptDumpError, defineStruct, u32, u64, viewOf, type ValueOf } from '../../codec/index.js';
import { DeviceImage, SIMDEV_IMAGE_MAX } from './image.js';
import type { PayloadRange } from './device.js';

export const SIMDEV_STATE_MAGIC = 'SIMDEVST';
export const SIMDEV_STATE_VERSION = 1;

export const simdev_state = defineStruct('simdev_state', {
  magic: bytes(8),
  version: u32,
  /** The device's seed: what its payload and its traffic derive from. */
  seed: u32,
  /** Traffic generation: bumped each time the workload moves new payload through the device. */
  generation: u32,
  /** CRC32 of the image as deflated (payload regions zero). */
  crc32: u32,
  image_size: u64,
});
export type SimdevState = ValueOf<typeof simdev_state>;

/** The image with its payload ranges zeroed (what the file keeps). */
function withoutPayload(img: DeviceImage, payload: readonly PayloadRange[]): Uint8Array {
  const out = new Uint8Array(img.bytes);
  for (const p of payload) {
    const r = img.region(p.region);
    out.fill(0, Number(r.offset) + p.offset, Number(r.offset) + p.offset + p.size);
  }
  return out;
}

/** The hardware file's bytes for an image whose `payload` ranges the model regenerates. */
export function encodeDeviceState(img: DeviceImage, seed: number, generation: number, payload: readonly PayloadRange[]): Uint8Array {
  const raw = withoutPayload(img, payload);
  const body = zlib.deflateSync(raw, { level: 6 });
  const head = simdev_state.toBytes({
    magic: Buffer.from(SIMDEV_STATE_MAGIC, 'latin1'), version: SIMDEV_STATE_VERSION, seed: seed >>> 0, generation: generation >>> 0,
    crc32: zlib.crc32(raw) >>> 0, image_size: BigInt(raw.length),
  });
  return Buffer.concat([head, body]);
}

/** Decodes a hardware file; the payload regions come back zero (the caller's model refills them). */
export function decodeDeviceState(data: Uint8Array, what: string): { state: SimdevState; image: DeviceImage } {
  const bad = (why: string, field: string): never => { throw new CorruptDumpError(`${what}: ${why}`, { struct: 'simdev_state', field }); };
  if (data.length < simdev_state.size) bad(`${data.length} bytes is shorter than its header`, 'magic');
  const st = simdev_state.decode(viewOf(data), 0);
  if (Buffer.from(st.magic).toString('latin1') !== SIMDEV_STATE_MAGIC) bad('not a device state file (bad magic)', 'magic');
  if (st.version !== SIMDEV_STATE_VERSION) bad(`version ${st.version} is not ours`, 'version');
  if (st.image_size === 0n || st.image_size > BigInt(SIMDEV_IMAGE_MAX)) bad(`image_size ${st.image_size} is out of range`, 'image_size');
  let raw: Buffer;
  try {
    // Bounded: inflation stops at the size the header promises, never more.
    raw = zlib.inflateSync(data.subarray(simdev_state.size), { maxOutputLength: Number(st.image_size) });
  } catch (e) {
    return bad(`the deflated image does not inflate to ${st.image_size} bytes (${(e as Error).message})`, 'image_size');
  }
  if (BigInt(raw.length) !== st.image_size) bad(`the image inflates to ${raw.length} bytes, the header says ${st.image_size}`, 'image_size');
  if ((zlib.crc32(raw) >>> 0) !== st.crc32) bad('the image does not match its CRC32', 'crc32');
  return { state: st, image: DeviceImage.decode(new Uint8Array(raw.buffer, raw.byteOffset, raw.length), what) };
}
