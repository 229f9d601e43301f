export declare function findPostgresBin(): string | undefined;
export declare function startPostgresCluster(options: { bin: string; durable?: boolean }): Promise<{
  url: string;
  control: { bin: string; data: string; log: string; options: string; asRoot: boolean };
  stop: () => void;
}>;
