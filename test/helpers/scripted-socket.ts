import type { ConnectionUpdate, SessionSocket, SocketFactory } from '../../src/session/connection.js';

/** A Boom-shaped close error, as Baileys puts in `lastDisconnect.error`. */
export const boom = (statusCode: number, message = `closed with ${statusCode}`): Error =>
  Object.assign(new Error(message), { output: { statusCode } });

/**
 * A socket the test drives: it emits the `connection.update`s and frames a test scripts, and records how
 * wa ended it. Stands in for Baileys behind the daemon's SocketFactory seam.
 */
export class ScriptedSocket implements SessionSocket {
  readonly baileys = undefined;
  ended = false;
  terminated = false;
  failure: string | undefined;
  private updates: Array<(update: ConnectionUpdate) => void> = [];
  private frames: Array<() => void> = [];

  onUpdate(listener: (update: ConnectionUpdate) => void): void {
    this.updates.push(listener);
  }
  onFrame(listener: () => void): void {
    this.frames.push(listener);
  }
  end(): Promise<void> {
    if (!this.ended) {
      this.ended = true;
      this.emit({ connection: 'close', lastDisconnect: { error: undefined, date: new Date() } });
    }
    return Promise.resolve();
  }
  terminate(): void {
    this.terminated = true;
    void this.end();
  }
  identityFailure(): string | undefined {
    return this.failure;
  }

  emit(update: ConnectionUpdate): void {
    for (const listener of [...this.updates]) listener(update);
  }
  open(): void {
    this.emit({ connection: 'open' });
  }
  close(error: Error): void {
    this.emit({ connection: 'close', lastDisconnect: { error, date: new Date() } });
  }
  frame(): void {
    for (const listener of this.frames) listener();
  }
}

/** A factory that records every socket it made, newest last. */
export function scriptedFactory(): { openSocket: SocketFactory; sockets: ScriptedSocket[]; last(): ScriptedSocket } {
  const sockets: ScriptedSocket[] = [];
  return {
    openSocket: () => {
      const socket = new ScriptedSocket();
      sockets.push(socket);
      return socket;
    },
    sockets,
    last: () => {
      const socket = sockets[sockets.length - 1];
      if (!socket) throw new Error('no socket was made');
      return socket;
    },
  };
}
