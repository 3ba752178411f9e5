/**
 * virtio-scsi back-end (virtio 1.2 §5.6, SCSI Host Device): controlq 0, eventq 1, requestq 2
 * and up (num_queues of them). One target (0) with one RAM LUN (0) of LUN_CAPACITY_BLOCKS
 * 512-byte blocks, allocated on first write. Every request completes with a well-formed answer.
 *
 * Request queues (§5.6.6.1): device-readable struct virtio_scsi_cmd_req (lun[8], tag, task_attr,
 * prio, crn) + cdb[cdb_size] + data-out; device-writable struct virtio_scsi_cmd_resp (sense_len,
 * residual, status_qualifier, status, response) + sense[sense_size] + data-in. cdb_size and
 * sense_size come from the configuration. A chain too short for the headers breaks the queue
 * (as QEMU: "wrong size for virtio-scsi headers").
 *
 * lun[0] must be 1 and lun[1] the target (0), else VIRTIO_SCSI_S_BAD_TARGET. LUN 0 answers
 * TEST UNIT READY, INQUIRY (standard data, VPD page 00h), READ CAPACITY (10) and (16),
 * READ/WRITE (10) and (16), REPORT LUNS, REQUEST SENSE and SYNCHRONIZE CACHE (10); any other
 * command gets CHECK CONDITION, ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE (T10 SPC-4).
 * Other LUNs answer INQUIRY with peripheral qualifier 3 ("no LUN") and REPORT LUNS; everything
 * else gets LOGICAL UNIT NOT SUPPORTED. A transfer longer than its data buffer is
 * VIRTIO_SCSI_S_OVERRUN (§5.6.6.1.1).
 *
 * controlq: task management functions complete (FUNCTION COMPLETE: nothing is ever
 * outstanding); asynchronous notification queries and subscriptions report no events. eventq:
 * buffers stay with the device (no events are generated).
 */
import { SparseRam } from '../dma/sparse-ram.js';
import { deviceConfigs, scsiCommands, virtioScsiReq } from '../spec/index.js';
import { VirtqueueError, type DescriptorChain } from '../virtqueue/index.js';
import type { DeviceBackend, DeviceContext } from './context.js';
import { serveQueue } from './serve.js';

const S = scsiCommands.constants;
const V = deviceConfigs.scsi.constants;
const CFG = deviceConfigs.scsi.registers;
const R = virtioScsiReq.registers;
const RC = virtioScsiReq.constants;
const BLOCK = S.LOGICAL_BLOCK_SIZE.value;
const CONTROLQ = 0;
const FIRST_REQUEST_QUEUE = 2;

interface Answer {
  response: number;
  status: number;
  sense?: Uint8Array;
  data?: Uint8Array;
  /** Bytes of data-out consumed (writes). */
  consumed?: number;
}

function be(bytes: Uint8Array, at: number, width: number): number {
  let v = 0;
  for (let i = 0; i < width; i++) v = v * 256 + bytes[at + i]!;
  return v;
}

function putBe(bytes: Uint8Array, at: number, width: number, value: number): void {
  for (let i = width - 1; i >= 0; i--) {
    bytes[at + i] = value % 256;
    value = Math.floor(value / 256);
  }
}

function sense(key: number, asc: number): Uint8Array {
  const s = new Uint8Array(S.SENSE_FIXED_LENGTH.value);
  s[0] = S.SENSE_FIXED_CURRENT.value;
  s[2] = key;
  s[7] = S.SENSE_FIXED_LENGTH.value - 8;
  s[12] = asc;
  return s;
}

function checkCondition(key: number, asc: number): Answer {
  return { response: V.S_OK.value, status: S.STATUS_CHECK_CONDITION.value, sense: sense(key, asc) };
}

const INVALID_OPCODE = () => checkCondition(S.SENSE_KEY_ILLEGAL_REQUEST.value, S.ASC_INVALID_OPCODE.value);
const INVALID_FIELD = () =>
  checkCondition(S.SENSE_KEY_ILLEGAL_REQUEST.value, S.ASC_INVALID_FIELD_IN_CDB.value);
const OUT_OF_RANGE = () => checkCondition(S.SENSE_KEY_ILLEGAL_REQUEST.value, S.ASC_LBA_OUT_OF_RANGE.value);
const NO_LUN = () => checkCondition(S.SENSE_KEY_ILLEGAL_REQUEST.value, S.ASC_LUN_NOT_SUPPORTED.value);
const GOOD = (data?: Uint8Array): Answer => ({ response: V.S_OK.value, status: S.STATUS_GOOD.value, data });

export class ScsiDevice implements DeviceBackend {
  readonly type = 'scsi' as const;
  private lun: SparseRam | undefined;
  readonly blocks: number;
  commands = 0;
  checkConditions = 0;

  constructor(
    private readonly ctx: DeviceContext,
    options: { blocks?: number } = {},
  ) {
    this.blocks = options.blocks ?? S.LUN_CAPACITY_BLOCKS.value;
  }

  private get storage(): SparseRam {
    return (this.lun ??= new SparseRam({ size: this.blocks * BLOCK }));
  }

  private get requestQueues(): number {
    return Math.max(1, this.ctx.readConfig(CFG.NUM_QUEUES.offset, 4));
  }

  notify(queue: number): void {
    if (queue === CONTROLQ) serveQueue(this.ctx, queue, (c) => this.control(c));
    else if (queue >= FIRST_REQUEST_QUEUE && queue < FIRST_REQUEST_QUEUE + this.requestQueues)
      serveQueue(this.ctx, queue, (c) => this.command(c));
  }

  reset(): void {
    // Commands complete before their chain is returned: nothing is outstanding.
  }

  // ---- request queues ----------------------------------------------------------------------

  private command(chain: DescriptorChain): number {
    const cdbSize = this.ctx.readConfig(CFG.CDB_SIZE.offset, 4);
    const senseSize = this.ctx.readConfig(CFG.SENSE_SIZE.offset, 4);
    const reqSize = RC.REQ_HEADER_SIZE.value + cdbSize;
    const respSize = RC.RESP_HEADER_SIZE.value + senseSize;
    if (chain.readable < reqSize || chain.writable < respSize) {
      throw new VirtqueueError(
        chain.queue,
        chain.head,
        'request',
        `virtio-scsi command needs ${reqSize} device-readable bytes (request + cdb_size ${cdbSize}) and ${respSize} device-writable ` +
          `bytes (response + sense_size ${senseSize}); the chain has ${chain.readable} and ${chain.writable}`,
      );
    }
    this.commands++;
    const lun = chain.gather(R.REQ_LUN.offset, R.REQ_LUN.size).slice();
    const cdb = chain.gather(R.REQ_CDB.offset, cdbSize).slice();
    const dataOut = chain.readable - reqSize;
    const dataIn = chain.writable - respSize;
    const answer = this.execute(lun, cdb, chain, reqSize, dataOut, dataIn);
    if (answer.status === S.STATUS_CHECK_CONDITION.value) this.checkConditions++;
    const resp = new Uint8Array(RC.RESP_HEADER_SIZE.value);
    const senseBytes = answer.sense
      ? answer.sense.subarray(0, Math.min(answer.sense.length, senseSize))
      : new Uint8Array(0);
    const transferred = answer.data?.length ?? answer.consumed ?? 0;
    const dataLength = answer.consumed !== undefined ? dataOut : dataIn;
    const put32 = (at: number, v: number) => {
      resp[at] = v & 0xff;
      resp[at + 1] = (v >>> 8) & 0xff;
      resp[at + 2] = (v >>> 16) & 0xff;
      resp[at + 3] = (v >>> 24) & 0xff;
    };
    put32(R.RESP_SENSE_LEN.offset, senseBytes.length);
    put32(R.RESP_RESID.offset, Math.max(0, dataLength - transferred));
    resp[R.RESP_STATUS.offset] = answer.status;
    resp[R.RESP_RESPONSE.offset] = answer.response;
    chain.scatter(0, resp, 0, resp.length);
    chain.scatter(R.RESP_SENSE.offset, senseBytes, 0, senseBytes.length);
    if (senseBytes.length < senseSize)
      chain.fill(R.RESP_SENSE.offset + senseBytes.length, senseSize - senseBytes.length, 0);
    if (answer.data && answer.data.length > 0) chain.scatter(respSize, answer.data, 0, answer.data.length);
    return respSize + (answer.data?.length ?? 0);
  }

  private execute(
    lun: Uint8Array,
    cdb: Uint8Array,
    chain: DescriptorChain,
    outAt: number,
    dataOut: number,
    dataIn: number,
  ): Answer {
    if (lun[0] !== RC.LUN_ADDRESS_FIRST.value || lun[1] !== 0)
      return { response: V.S_BAD_TARGET.value, status: S.STATUS_GOOD.value };
    const lunId = ((lun[2]! << 8) | lun[3]!) & RC.LUN_MASK.value;
    const op = cdb[0]!;
    /** Data-in of at most `allocation` bytes, or OVERRUN when the buffer cannot hold it. */
    const reply = (data: Uint8Array, allocation: number): Answer => {
      const n = Math.min(data.length, allocation);
      if (n > dataIn) return { response: V.S_OVERRUN.value, status: S.STATUS_GOOD.value };
      return GOOD(data.subarray(0, n));
    };
    if (op === S.OP_INQUIRY.value) {
      const data = this.inquiry(cdb, lunId === 0);
      return data ? reply(data, be(cdb, 3, 2)) : INVALID_FIELD();
    }
    if (op === S.OP_REPORT_LUNS.value) {
      const list = new Uint8Array(16);
      putBe(list, 0, 4, 8);
      return reply(list, be(cdb, 6, 4));
    }
    if (lunId !== 0) return NO_LUN();
    switch (op) {
      case S.OP_TEST_UNIT_READY.value:
      case S.OP_SYNCHRONIZE_CACHE_10.value:
        return GOOD();
      case S.OP_REQUEST_SENSE.value:
        return reply(sense(S.SENSE_KEY_NO_SENSE.value, 0), cdb[4]!);
      case S.OP_READ_CAPACITY_10.value: {
        const d = new Uint8Array(8);
        putBe(d, 0, 4, Math.min(this.blocks - 1, 0xffff_ffff));
        putBe(d, 4, 4, BLOCK);
        return reply(d, 8);
      }
      case S.OP_SERVICE_ACTION_IN_16.value: {
        if ((cdb[1]! & 0x1f) !== S.SA_READ_CAPACITY_16.value) return INVALID_FIELD();
        const d = new Uint8Array(32);
        putBe(d, 0, 8, this.blocks - 1);
        putBe(d, 8, 4, BLOCK);
        return reply(d, be(cdb, 10, 4));
      }
      case S.OP_READ_10.value:
      case S.OP_READ_16.value:
      case S.OP_WRITE_10.value:
      case S.OP_WRITE_16.value: {
        const long = op === S.OP_READ_16.value || op === S.OP_WRITE_16.value;
        const lba = long ? be(cdb, 2, 8) : be(cdb, 2, 4);
        const count = long ? be(cdb, 10, 4) : be(cdb, 7, 2);
        if (lba > this.blocks || count > this.blocks - lba) return OUT_OF_RANGE();
        const bytes = count * BLOCK;
        const write = op === S.OP_WRITE_10.value || op === S.OP_WRITE_16.value;
        if (bytes > (write ? dataOut : dataIn))
          return { response: V.S_OVERRUN.value, status: S.STATUS_GOOD.value };
        const storage = this.storage;
        if (write) {
          chain.readPieces(outAt, bytes, (b, at, n, position) =>
            storage.write(lba * BLOCK + position, b, at, n),
          );
          return { ...GOOD(), consumed: bytes };
        }
        const data = new Uint8Array(bytes);
        storage.read(lba * BLOCK, data, 0, bytes);
        return GOOD(data);
      }
      default:
        return INVALID_OPCODE();
    }
  }

  /** Standard INQUIRY data, or VPD page 00h (the only page: the list of pages) with EVPD. */
  private inquiry(cdb: Uint8Array, present: boolean): Uint8Array | undefined {
    const evpd = (cdb[1]! & 1) === 1;
    const qualifierType = present ? S.DEVICE_TYPE_DISK.value : S.DEVICE_TYPE_NO_LUN.value;
    if (evpd) {
      if (cdb[2] !== 0) return undefined;
      return Uint8Array.of(qualifierType, 0, 0, 1, 0);
    }
    const d = new Uint8Array(S.INQUIRY_STANDARD_LENGTH.value);
    d[0] = qualifierType;
    d[2] = S.INQUIRY_VERSION.value;
    d[3] = S.INQUIRY_RESPONSE_FORMAT.value;
    d[4] = d.length - 5;
    d.set(Buffer.from('VMMR    ', 'latin1'), 8);
    d.set(Buffer.from('virtio-scsi LUN ', 'latin1'), 16);
    d.set(Buffer.from('0001', 'latin1'), 32);
    return d;
  }

  // ---- control queue (§5.6.6.2) ------------------------------------------------------------

  private control(chain: DescriptorChain): number {
    if (chain.readable < 4) {
      throw new VirtqueueError(
        chain.queue,
        chain.head,
        'request',
        `virtio-scsi control request of ${chain.readable} device-readable bytes has no type`,
      );
    }
    const type = chain.readUint(R.CTRL_TYPE.offset, 4);
    if (type === V.T_TMF.value) {
      this.need(chain, RC.TMF_REQ_SIZE.value, RC.TMF_RESP_SIZE.value, 'task management');
      chain.writeUint(R.TMF_RESPONSE.offset, 1, RC.S_FUNCTION_COMPLETE.value);
      return RC.TMF_RESP_SIZE.value;
    }
    if (type === V.T_AN_QUERY.value || type === V.T_AN_SUBSCRIBE.value) {
      this.need(chain, RC.AN_REQ_SIZE.value, RC.AN_RESP_SIZE.value, 'asynchronous notification');
      chain.writeUint(R.AN_EVENT_ACTUAL.offset, 4, 0);
      chain.writeUint(R.AN_RESPONSE.offset, 1, V.S_OK.value);
      return RC.AN_RESP_SIZE.value;
    }
    if (chain.writable < 1) {
      throw new VirtqueueError(
        chain.queue,
        chain.head,
        'request',
        `virtio-scsi control request of type ${type} has no response byte`,
      );
    }
    chain.writeUint(0, 1, V.S_FAILURE.value);
    return 1;
  }

  private need(chain: DescriptorChain, readable: number, writable: number, what: string): void {
    if (chain.readable < readable || chain.writable < writable) {
      throw new VirtqueueError(
        chain.queue,
        chain.head,
        'request',
        `virtio-scsi ${what} request needs ${readable} device-readable and ${writable} device-writable bytes; the chain has ${chain.readable} and ${chain.writable}`,
      );
    }
  }
}
