export * from './elf/index.js';
export * from './live_vmcore.js';
export * from './codecs/index.js';
export {
  DUMP_MAGIC_NUMBER, DUMP_MAGIC_LIVE, DUMP_VERSION_NUMBER, DUMP_HEADER_OFFSET, DUMP_BUFFER_SIZE, DUMP_PANIC_LEN,
  DUMP_ASM_MAGIC_NUMBER, DUMP_ASM_VERSION_NUMBER, DUMP_MAX_NUM_CPUS, DUMP_LEVEL_NONE, DUMP_LEVEL_HEADER, DUMP_LEVEL_KERN,
  DUMP_LEVEL_USED, DUMP_LEVEL_ALL_RAM, DUMP_MASK_HEADER, DUMP_MASK_KERN, DUMP_MASK_USED, DUMP_MASK_UNUSED, DUMP_FLAGS_NONE,
  DUMP_FLAGS_NONDISRUPT, DUMP_FLAGS_SOFTBOOT, DUMP_FLAGS_POLL, DUMP_FLAGS_NETDUMP, DUMP_FLAGS_DISKDUMP, DUMP_FLAGS_KNOWN,
  DUMP_DH_FLAGS_NONE, DUMP_DH_TRUNCATED, dumpLevelMask, DUMP_RANGE_UNSPECIFIED, DUMP_RANGE_NOFIT, DUMP_RANGE_DROPPED,
  DUMP_RANGE_DAMAGED_RAM, DUMP_RANGE_DEVICE, DUMP_RANGE_DUMPER, DUMP_RANGE_NAMES, dumpRangeName, type DumpRangeReasonName,
} from './lkcd/constants.js';
export * from './lkcd/dump_header.js';
export * from './lkcd/dump_header_asm.js';
export * from './lkcd/dump_page.js';
export * from './memdev/dump_config_block.js';
export * from './memdev/block.js';
export * from './memdev/memdev.js';
export * from './writer/stage1.js';
export { WORKER_WAIT_MS } from './writer/parallel_codec.js';
export { panicCompress } from './writer/batch_encoder.js';
export * from './driver.js';
export * from './crashdump_boot.js';
export * from './softboot.js';
export * from './held_dump.js';
export * from './crash.js';
export * from './formats/inplace.js';
export * from './device.js';
export * from './stage2.js';
export * from './device_dump.js';
export * from './formats/index.js';
export * from './dump_memory.js';
export * from './kernel_view.js';
export * from './export_elf.js';
export * from './faults.js';
export * from './reboot.js';
export * from './accounting.js';
export * from './memdev/lists.js';
export * from './proc_vmcore_file.js';
export * from './kdump/diskdump.js';
export * from './codecs/lzo1x.js';
export * from './codecs/snappy.js';
export * from './codecs/zstd.js';
export * from './codecs/xxhash64.js';
export * from './estimate.js';
