/**
 * The POSIX sh scripts ssh-storage.ts runs on the server, one per step, as
 * `sh -c SCRIPT LABEL ROOT K C1..CK ARGS...`: ROOT is the storage's root,
 * C1..CK the folder's components, ARGS the step's own (names, counts, the
 * lock's text). Names reach the scripts only as arguments, never as shell
 * text. The server needs sh, GNU coreutils (dd iflag=nofollow,nonblock,
 * stat -c, mv -T, ln -T, sync -f), GNU find (-printf) and rsync.
 *
 * WALK descends from the root one component at a time and refuses a
 * component that is a symlink or not a directory, so nothing below the root
 * is reached through a symlink. Files are read with dd iflag=nofollow,
 * nonblock after a [ -L ]/[ -f ] check: a name swapped for a symlink or a
 * fifo in between is refused or read as empty, never followed or waited on.
 *
 * Exit codes the caller maps: 65 damage (stderr "D<i> <what>": i < K is the
 * folder's component i, K+j the step's j-th name), 66 the folder is absent,
 * 67 a file is absent (stderr "M<i>"). Anything else is a failed step.
 */

/** Shared head of every script: the helpers and the walk into the folder (mk=1: make what is missing, mode 0700). */
const WALK = `set -u
umask 077
damage() { printf 'D%s %s\\n' "$1" "$2" >&2; exit 65; }
missing() { printf 'M%s\\n' "$1" >&2; exit 67; }
durable() { sync -- "$@" 2>/dev/null || sync; }
root=$1; k=$2; shift 2
if [ "$mk" = 1 ]; then mkdir -p -- "$root" || exit 1; fi
[ -d "$root" ] || exit 66
cd -- "$root" || exit 1
i=0
while [ "$i" -lt "$k" ]; do
  c=$1; shift
  if [ -L "$c" ]; then damage "$i" 'is a symlink, not a folder'; fi
  if [ ! -e "$c" ]; then
    if [ "$mk" = 1 ]; then mkdir -m 700 -- "./$c" || exit 1; else exit 66; fi
  fi
  if [ -L "$c" ] || [ ! -d "$c" ]; then damage "$i" 'is not a folder'; fi
  cd -- "./$c" || exit 1
  i=$((i + 1))
done
regular() {
  if [ -L "$1" ]; then damage "$k" 'is a symlink, not a file xenbackup wrote'; fi
  if [ ! -e "$1" ]; then missing "$k"; fi
  if [ ! -f "$1" ]; then damage "$k" 'is not a regular file'; fi
}
`;

function script(body: string, mk = false): string {
  return `mk=${mk ? 1 : 0}\n${WALK}${body}`;
}

/** The folder's items as NUL-terminated records: type (f, d, o), size, '/', name. */
export const LIST = script(`
for f in * .[!.]* ..?*; do
  if [ -L "$f" ]; then printf 'o0/%s\\0' "$f"
  elif [ -f "$f" ]; then s=$(stat -c %s -- "$f") || exit 1; printf 'f%s/%s\\0' "$s" "$f"
  elif [ -d "$f" ]; then printf 'd0/%s\\0' "$f"
  elif [ -e "$f" ]; then printf 'o0/%s\\0' "$f"
  fi
done
exit 0`);

/** The real sub-folders (not symlinks), NUL-terminated. */
export const LIST_FOLDERS = script(`
for f in * .[!.]* ..?*; do
  if [ ! -L "$f" ] && [ -d "$f" ]; then printf '%s\\0' "$f"; fi
done
exit 0`);

export const ENSURE_FOLDER = script('exit 0', true);

/** $1 name, $2 most bytes: 'O' then the file, refused when larger. */
export const READ = script(`
regular "$1"
s=$(stat -c %s -- "$1") || exit 1
if [ "$s" -gt "$2" ]; then damage "$k" "is $s bytes, more than the $2 it can be"; fi
printf O
exec dd if="$1" iflag=nofollow,nonblock,fullblock,count_bytes bs=65536 count=$(($2 + 1)) status=none`);

/** $1 name, $2 offset, $3 length: 'O' then those bytes. */
export const READ_RANGE = script(`
regular "$1"
printf O
exec dd if="$1" iflag=nofollow,nonblock,fullblock,skip_bytes,count_bytes bs=65536 skip="$2" count="$3" status=none`);

/** $1 name, $2 offset: 'O' then the file from there on. */
export const OPEN_READ = script(`
regular "$1"
printf O
exec dd if="$1" iflag=nofollow,nonblock,skip_bytes bs=1048576 skip="$2" status=none`);

/**
 * $1 name, $2 length; the data on stdin; the folder is made where missing. Written as <name>.partial (created
 * O_EXCL by set -C after removing whatever was planted there), its length
 * checked (a dropped connection ends stdin early, which cat takes for the
 * end), made durable, renamed over the name (mv -T: never into a folder of
 * that name) and the folder made durable.
 */
export const WRITE = script(`
p=$1.partial
rm -rf -- "$p" || exit 1
set -C
cat > "$p" || { rm -f -- "$p"; exit 1; }
set +C
s=$(stat -c %s -- "$p") || exit 1
if [ "$s" -ne "$2" ]; then rm -f -- "$p"; echo "$p: $s of $2 bytes arrived" >&2; exit 1; fi
durable "$p" && mv -T -- "$p" "$1" && durable . || { rm -f -- "$p"; exit 1; }
exit 0`, true);

/** $1 name (the folder is made where missing): before rsync writes it, the name must be absent or a regular file (rsync would copy into a folder). */
export const UPLOAD_CHECK = script(`
if [ -L "$1" ] || { [ -e "$1" ] && [ ! -f "$1" ]; }; then damage "$k" 'is in the way: not a regular file'; fi
exit 0`, true);

/** $1 name: removed with whatever it holds (rm -rf never follows a symlink). */
export const REMOVE = script(`
rm -rf -- "$1" || exit 1
exit 0`);

/**
 * The names: each <name>.partial is made durable (a tree: mode 0700 and its
 * filesystem synced) and renamed to <name>, and the folder made durable,
 * before the next one.
 */
export const PUBLISH = script(`
j=0
for n in "$@"; do
  s=$n.partial
  if [ -L "$s" ]; then damage $((k + j)) 'is a symlink, not what xenbackup wrote'; fi
  if [ -d "$s" ]; then
    chmod 700 -- "$s" || exit 1
    sync -f -- "$s" 2>/dev/null || sync
  elif [ -f "$s" ]; then durable "$s" || exit 1
  elif [ -e "$s" ]; then damage $((k + j)) 'is not a regular file or a folder'
  else missing $((k + j))
  fi
  mv -T -- "$s" "$n" && durable . || exit 1
  j=$((j + 1))
done
exit 0`);

/**
 * $1 lock name, $2 holder text (the folder is made where missing): 'L' when this call linked its temporary
 * file (written O_EXCL) to the name; else 'B' and the first 64 KiB of the
 * existing lock (nothing when it is not a regular file).
 */
export const TRY_LOCK = script(`
t=$1.$$
rm -rf -- "$t" || exit 1
set -C
printf '%s' "$2" > "$t" || exit 1
set +C
durable "$t"
if e=$(ln -T -- "$t" "$1" 2>&1); then rm -f -- "$t"; durable .; printf L; exit 0; fi
rm -f -- "$t"
if [ ! -e "$1" ] && [ ! -L "$1" ]; then printf '%s\\n' "$e" >&2; exit 1; fi
printf B
if [ ! -L "$1" ] && [ -f "$1" ]; then
  dd if="$1" iflag=nofollow,nonblock,fullblock,count_bytes bs=65536 count=65536 status=none 2>/dev/null
fi
exit 0`, true);

/**
 * $1 lock name, $2 holder text: removed when its text is exactly that; the
 * text of a lock that is not a regular file (a planted symlink or fifo) is
 * '', as TRY_LOCK reports it, so that a caller can take it over. A folder
 * under the lock's name is left alone.
 */
export const UNLOCK = script(`
if [ -L "$1" ]; then now=x
elif [ ! -e "$1" ] || [ -d "$1" ]; then exit 0
elif [ -f "$1" ]; then now=$(dd if="$1" iflag=nofollow,nonblock,fullblock,count_bytes bs=65536 count=65537 status=none; echo x)
else now=x
fi
if [ "$now" = "$2"x ]; then rm -f -- "$1" && durable .; fi
exit 0`);

/**
 * The names: the bytes their removal would free, one number: every folder's
 * own size and every other item's with a single link (a file hardlinked
 * from a neighbouring rsync tree stays). find -P never follows a symlink;
 * a failed find fails the step through awk (sh has no pipefail).
 */
export const BYTES_HELD = script(`
for n in "$@"; do
  if [ -e "$n" ] || [ -L "$n" ]; then find -P "./$n" \\( -type d -o -links 1 \\) -printf '%s\\n' || { echo failed; exit 1; }; fi
done | awk '/^failed$/ { bad = 1 } { s += $1 } END { if (bad) exit 1; printf "%.0f\\n", s }'`);
