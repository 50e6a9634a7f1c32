/**
 * @module
 * The subscriber contract: what a subscription (a producer or a consumer) receives from the
 * connection that carries it (docs/PROTOCOL.md §6). The connection owns this interface, so it
 * routes frames to producers and consumers without knowing either class.
 */

import type { RelayError } from "../errors.ts";
import type { ControlMessage } from "../protocol/control.ts";
import type { Frame } from "../protocol/framer.ts";

/** What a subscription (producer or consumer) receives from its connection. */
export interface Subscriber {
  /** A control message addressed to this subscription's tag. */
  onControl(m: ControlMessage): Promise<void> | void;
  /** A data frame with this subscription's tag (consumers only). */
  onData?(frame: Frame): void;
  /**
   * The subscription is over: the whole connection failed or closed (`connection` true), or
   * the relay ended just this subscription with an ERROR (`connection` false).
   */
  onClose(error: RelayError, connection: boolean): void;
}
