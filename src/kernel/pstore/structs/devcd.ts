import { array, cstring, defineStruct, u32, u64, type ValueOf } from '../../../codec/index.js';
import { DEVCD_MAX_DEVICES, DEVCD_MAX_REGIONS, VMCOREDD_MAX_NAME_BYTES } from '../constants.js';

/**
 * Ours, for the device-coredump frontend of the 2023 RFC (never merged):
 * one region a driver registered, and, with the same layout, the header of
 * that region's bytes inside a device's note. A buffer region is `size`
 * bytes of RAM at physical `addr`; a register region is size/4 32-bit
 * registers the device shows at bus address `addr`, read at the panic.
 */
export const devcd_region = defineStruct('devcd_region', {
  name: cstring(16),
  /** DEVCD_REGION_BUFFER or DEVCD_REGION_REGISTERS. */
  type: u32,
  size: u32,
  addr: u64,
});
export type DevcdRegion = ValueOf<typeof devcd_region>;

/** Ours: one registered device, named as a vmcoredd dump_name is ("<driver>_<bus id>"). */
export const devcd_device = defineStruct('devcd_device', {
  dump_name: cstring(VMCOREDD_MAX_NAME_BYTES),
  nr_regions: u32,
  regions: array(devcd_region, DEVCD_MAX_REGIONS),
});
export type DevcdDevice = ValueOf<typeof devcd_device>;

/** Ours: the registry page, what the frontend's device list holds. */
export const devcd_registry = defineStruct('devcd_registry', {
  nr_devices: u32,
  _pad: u32,
  devices: array(devcd_device, DEVCD_MAX_DEVICES),
});
export type DevcdRegistry = ValueOf<typeof devcd_registry>;

/** Ours: the kernel variable devcd_state. */
export const devcd_state = defineStruct('devcd_state', {
  /** DEVCD_STATE_* bits. */
  flags: u32,
  _pad: u32,
  /** Frame of the registry page (0: none). */
  registry_pfn: u64,
});
export type DevcdState = ValueOf<typeof devcd_state>;

/** The frontend is on (ramoops.devcoredump_size was given and the zone probed). */
export const DEVCD_STATE_ENABLED = 0x1;
/** /sys/class/devcoredump/disabled was set to 1: no device dumps until the next boot. */
export const DEVCD_STATE_DISABLED = 0x2;
