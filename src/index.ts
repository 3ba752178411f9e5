/** vmmr as a library: the transport-free core a Node harness can import directly. */
export { Machine, type MachineOptions } from './machine/machine.js';
export { type MachineState, STATE_FORMAT, STATE_VERSION } from './machine/state.js';
export {
  read,
  write,
  SPACES,
  isSpace,
  type Space,
  type AccessValue,
  type AccessTarget,
} from './access/index.js';
export { readBlock, writeBlock } from './access/block.js';
export { runBatch, type Operation, type OperationResult } from './access/batch.js';
export { describeFunction, listFunctions } from './views/functions.js';
export { pfSummary, sriovState } from './views/pfs.js';
export { setNumVfs } from './control/sriov.js';
export { saveStateFile, loadStateFile, StateFileError } from './machine/state-file.js';
export { VmmrError, isVmmrError, type VmmrErrorCode } from './base/errors.js';
export { EventBus, EVENT_TYPES, type VmmrEvent, type VmmrEventType } from './base/events.js';
export { GuestView } from './translator/guest-view.js';
export { Translator } from './translator/translator.js';
export { TraceRing, type TraceEntry } from './translator/trace.js';
export {
  legacyProbe,
  modernProbe,
  runSim,
  runSimAsync,
  type Sim,
  type SimOp,
  type SimPort,
} from './driver-sim/probes.js';
export { parseBdf, formatBdf, normalizeBdf } from './pci/bdf.js';
export { formatLspciDump } from './views/dump.js';
export {
  DEFAULT_TOPOLOGY,
  parseTopology,
  loadTopologyFile,
  type ResolvedTopology,
  type ResolvedPf,
} from './machine/topology.js';
export type { MmrVf } from './mmr/vf.js';
export type { VirtioPf } from './mmr/pf.js';
export { PlatformBus, type DmaProvider, type PlatformBusOptions } from './platform/bus.js';
export { assignAddresses, type AssignmentReport, type BarAssignment } from './platform/assign.js';
export {
  DEFAULT_PLATFORM_MAP,
  resolvePlatformOptions,
  type PlatformMap,
  type PlatformOptions,
} from './machine/platform-map.js';
export type { ViewName } from './platform/decode.js';
