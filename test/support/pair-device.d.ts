import type { AuthenticationState } from '@whiskeysockets/baileys';
import type { Logger } from 'pino';

export declare function pairDevice(options: {
  baileys: typeof import('@whiskeysockets/baileys');
  auth: { state: AuthenticationState; saveCreds: () => Promise<void> };
  url: string;
  logger: Logger;
  scan: (qr: string) => Promise<unknown>;
  skipFirstLogin?: boolean | undefined;
}): Promise<string>;
