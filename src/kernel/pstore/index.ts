/**
 * pstore with its ramoops backend (fs/pstore as Linux 6.1 has it) and,
 * ours, the device-coredump frontend of the 2023 RFC.
 */
export * from './constants.js';
export * from './cmdline.js';
export * from './ramoops_layout.js';
export * from './reed_solomon.js';
export { PersistentRamZone, type ZoneInit } from './ram_core.js';
export {
  attachZone, findZone, hasSymbol, kmsgHeader, RAMOOPS_CXT_SYMBOL, ramoopsFrames, readKmsgHeader, readRamoops,
  type RamoopsRecord,
} from './ramoops.js';
export { consoleLine, PSTORE_STATE_SYMBOL, pstoreConsoleWrite, readPstoreState } from './console.js';
export {
  deflateRecord, inflateRecord, kmsgDump, kmsgDumpGetBuffer, syslogLine, wallClock, zbufsizeDeflate,
} from './platform.js';
export { pstoreFileName, pstoreFiles, pstoreRead, pstoreUnlink, type PstoreFileInfo } from './pstorefs.js';
export {
  DEVCD_ELF_OVERHEAD, DEVCD_STATE_SYMBOL, devcdDevices, devcdDisable, devcdDisabled, devcdPanicNotifier, devcdRegister,
  readDevcdState, type DevcdRegistration, type RegisterReader,
} from './devcoredump.js';
export { bootCommandLine, memmapReservations, pstoreInit } from './init.js';
export { persistent_ram_buffer, type PersistentRamBuffer } from './structs/persistent_ram_buffer.js';
export { ramoops_context, type RamoopsContext } from './structs/ramoops_context.js';
export { pstore_state, pstore_file, type PstoreState, type PstoreFile } from './structs/pstore_state.js';
export { devcd_region, devcd_device, devcd_registry, devcd_state } from './structs/devcd.js';
