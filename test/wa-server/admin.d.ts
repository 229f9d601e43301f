import type { TestServer } from './server.js';
export declare function startAdminServer(
  server: TestServer,
  opts?: { host?: string; port?: number },
): Promise<{ url: string; port: number; close(): Promise<void> }>;
