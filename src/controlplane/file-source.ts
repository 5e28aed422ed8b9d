// Config source: a YAML file or a directory of them, watched; every file is one source in the store.

import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../telemetry/logger';
import { ControlPlaneError, CP_ERR } from './errors';
import type { SourceUpdate } from './store';
import { digest } from './translate-memo';
import { parseYamlSource } from './yaml-parse';

/** Where sources deliver; the control plane logs, counts and stores in one place behind it. */
export interface ConfigSink {
  apply(update: SourceUpdate): void;
  remove(source: string): void;
}

export interface ConfigSource {
  /** Resolves once the initial content has been delivered. */
  start(): Promise<void>;
  close(): void;
}

const YAML_FILE = /\.ya?ml$/i;
/** What `seen` holds for a blank file (any whitespace). */
const EMPTY = '';

export class FileSource implements ConfigSource {
  private readonly root: string;
  private readonly isDir: boolean;
  private watcher: fs.FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  /**
   * A digest of the last content delivered per file, so touching a file without changing it pushes nothing
   * (the digest, not the text: the store holds what the text said).
   */
  private readonly seen = new Map<string, string>();
  private closed = false;
  /** Files read empty once after having content: possibly caught mid-write, so looked at once more. */
  private readonly emptyOnce = new Set<string>();
  /** Files the watch named since the last scan, and whether it named none (then every file is read). */
  private readonly named = new Set<string>();
  private everything = false;
  /** Size, mtime and inode of each file when last read: a file the watch did not name is read if they moved. */
  private readonly stats = new Map<string, string>();

  constructor(
    configPath: string,
    private readonly sink: ConfigSink,
    private readonly log: Logger,
    private readonly debounceMs = 50,
  ) {
    this.root = path.resolve(configPath);
    let st: fs.Stats;
    try {
      st = fs.statSync(this.root);
    } catch (err) {
      throw new ControlPlaneError(CP_ERR.CONFIG_PATH, `config path ${this.root} does not exist`, {
        hint: 'pass --config with an existing YAML file or directory',
        cause: err,
      });
    }
    if (!st.isDirectory() && !st.isFile()) {
      throw new ControlPlaneError(CP_ERR.CONFIG_PATH, `config path ${this.root} is neither a file nor a directory`);
    }
    this.isDir = st.isDirectory();
  }

  static sourceId(file: string): string {
    return `file:${file}`;
  }

  async start(): Promise<void> {
    this.scan();
    // Watch the directory even for a single file: editors save by rename, which a file watch loses.
    const dir = this.isDir ? this.root : path.dirname(this.root);
    this.watcher = fs.watch(dir, { persistent: false }, (_event, name) => {
      if (!this.isDir && name !== null && name !== path.basename(this.root)) return;
      if (name === null) this.everything = true;
      else this.named.add(path.join(dir, name));
      this.schedule();
    });
    this.watcher.on('error', (err) => this.log.error({ err, dir }, 'config watch failed; changes are no longer followed'));
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.scan();
    }, this.debounceMs);
  }

  private files(): string[] {
    if (!this.isDir) return fs.existsSync(this.root) ? [this.root] : [];
    try {
      return fs
        .readdirSync(this.root, { withFileTypes: true })
        .filter((e) => (e.isFile() || e.isSymbolicLink()) && YAML_FILE.test(e.name) && !e.name.startsWith('.'))
        .map((e) => path.join(this.root, e.name))
        .sort();
    } catch (err) {
      this.log.error({ err, dir: this.root }, 'cannot list config directory');
      return [...this.seen.keys()];
    }
  }

  /**
   * Re-reads every file whose content changed and drops files that disappeared. A file is read when the watch
   * named it, when its size, mtime or inode moved, or on a scan no event named files for (the first one, and
   * events without a name): at thousands of Services, reading every file on each change cost more than the change.
   */
  private scan(): void {
    if (this.closed) return;
    const named = new Set(this.named);
    const everything = this.everything || this.stats.size === 0;
    this.named.clear();
    this.everything = false;
    const present = new Set(this.files());
    for (const file of [...this.seen.keys()]) {
      if (!present.has(file)) {
        this.seen.delete(file);
        this.log.info({ file }, 'config file removed; dropping its objects');
        this.sink.remove(FileSource.sourceId(file));
      }
    }
    for (const file of [...this.stats.keys()]) if (!present.has(file)) this.stats.delete(file);
    for (const file of present) {
      let text: string;
      try {
        const st = fs.statSync(file, { bigint: true });
        const stamp = `${st.size} ${st.mtimeNs} ${st.ino}`;
        if (!everything && !named.has(file) && !this.emptyOnce.has(file) && this.stats.get(file) === stamp) continue;
        this.stats.set(file, stamp);
        text = fs.readFileSync(file, 'utf8');
      } catch (err) {
        // Vanished between readdir and read: the next event removes it.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.error({ err, file }, 'cannot read config file');
        continue;
      }
      const sum = text.trim() === '' ? EMPTY : digest(text);
      if (this.seen.get(file) === sum) continue;
      // writeFile truncates before it writes: an empty read of a non-empty file gets one more debounce period.
      if (text.trim() === '' && this.seen.has(file) && this.seen.get(file) !== EMPTY && !this.emptyOnce.has(file)) {
        this.emptyOnce.add(file);
        this.schedule();
        continue;
      }
      this.emptyOnce.delete(file);
      this.seen.set(file, sum);
      this.sink.apply(parseYamlSource(FileSource.sourceId(file), file, text));
    }
  }
}
