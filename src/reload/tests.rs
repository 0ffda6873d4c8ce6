//! The shared reload logic, on a toy target: a `key = value` file whose generations live in a
//! [`Slot`]. Every reloadable of the broker goes through the same [`run`] and [`watch`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use super::*;

/// A config file of `key = value` lines; a line without `=` is refused at its line:column.
struct Toy {
    path: PathBuf,
    slot: Slot<Vec<(String, String)>>,
    reloads: Reloads,
    loads: AtomicUsize,
    /// When set, each load waits here twice: once after reading (half-loaded), once to finish.
    pause: Mutex<Option<Arc<Barrier>>>,
}

impl Toy {
    fn open(path: &Path) -> Arc<Self> {
        let first = parse(path).unwrap();
        Arc::new(Toy {
            path: path.to_path_buf(),
            slot: Slot::new(first),
            reloads: Reloads::default(),
            loads: AtomicUsize::new(0),
            pause: Mutex::new(None),
        })
    }

    fn value(&self, key: &str) -> Option<String> {
        let current = self.slot.current();
        current
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
}

fn parse(path: &Path) -> Result<Vec<(String, String)>, Problem> {
    let text = std::fs::read_to_string(path).map_err(|e| Problem::unlocated(e.to_string()))?;
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            let column = line.len() - line.trim_start().len() + 1;
            return Err(Problem::at(
                "toy.conf",
                n + 1,
                column,
                "expected `key = value`",
            ));
        };
        pairs.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(pairs)
}

impl Reloadable for Toy {
    type Next = Vec<(String, String)>;
    type Error = Problem;

    fn kind(&self) -> &'static str {
        "toy"
    }

    fn load(&self) -> Result<Self::Next, Problem> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let pause = self.pause.lock().unwrap().clone();
        let next = parse(&self.path);
        if let Some(barrier) = pause {
            barrier.wait();
            barrier.wait();
        }
        next
    }

    fn swap(&self, next: Self::Next) -> Option<u64> {
        if *self.slot.current() == next {
            return None;
        }
        Some(self.slot.swap(next))
    }

    fn generation(&self) -> u64 {
        self.slot.generation()
    }

    fn problems(&self, error: &Problem) -> Vec<Problem> {
        vec![error.clone()]
    }

    fn reloads(&self) -> &Reloads {
        &self.reloads
    }
}

fn heard(toy: &Toy) -> Arc<Mutex<Vec<Outcome>>> {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = heard.clone();
    toy.reloads.observe(Arc::new(move |o: &Outcome| {
        sink.lock().unwrap().push(o.clone())
    }));
    heard
}

fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn watched(toy: &Arc<Toy>) -> Watch {
    let target = Arc::downgrade(toy);
    watch(
        "toy-watcher",
        Sources::file(&toy.path, Duration::from_millis(500)),
        move || {
            if let Some(t) = target.upgrade() {
                let _ = run(&*t);
            }
        },
    )
    .unwrap()
}

#[test]
fn a_bad_generation_keeps_the_last_good_one_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("toy.conf");
    std::fs::write(&path, "a = 1\n").unwrap();
    let toy = Toy::open(&path);
    let heard = heard(&toy);

    std::fs::write(&path, "a = 2\n  broken\n").unwrap();
    let err = run(&*toy).unwrap_err();
    assert_eq!(err.to_string(), "toy.conf:2:3: expected `key = value`");
    assert_eq!(
        toy.value("a").as_deref(),
        Some("1"),
        "the last good generation serves"
    );
    assert_eq!(toy.generation(), 1);
    assert_eq!(toy.reloads.failures(), 1);
    assert_eq!(toy.reloads.last_error(), Some(vec![err.clone()]));
    assert_eq!(
        heard.lock().unwrap().as_slice(),
        [Outcome {
            kind: "toy",
            generation: 1,
            change: Change::Kept(vec![err]),
        }]
    );

    // Repaired: a new generation, the error is forgotten; identical content swaps nothing.
    std::fs::write(&path, "a = 3\n").unwrap();
    assert_eq!(run(&*toy).unwrap(), Some(2));
    assert_eq!(toy.value("a").as_deref(), Some("3"));
    assert_eq!(toy.reloads.last_error(), None);
    assert_eq!(run(&*toy).unwrap(), None);
    let heard = heard.lock().unwrap();
    assert_eq!(heard.len(), 2, "{heard:?}");
    assert_eq!(heard[1].change, Change::Reloaded);
    assert_eq!(heard[1].generation, 2);
}

#[test]
fn a_rename_into_place_save_and_a_truncate_write_save_are_both_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("toy.conf");
    std::fs::write(&path, "a = 1\n").unwrap();
    let toy = Toy::open(&path);
    let _watch = watched(&toy);

    // Rename into place (what most editors and `palisade user` do).
    let tmp = dir.path().join(".toy.conf.tmp");
    std::fs::write(&tmp, "a = renamed\n").unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert!(wait_until(|| toy.value("a").as_deref() == Some("renamed")));

    // Truncate + write in place (the inode stays).
    std::fs::write(&path, "a = truncated\n").unwrap();
    assert!(wait_until(|| toy.value("a").as_deref() == Some("truncated")));
}

#[test]
fn a_file_source_is_its_file_alone() {
    let sources = Sources::file(Path::new("/etc/palisade/toy.conf"), Duration::from_secs(1));
    assert_eq!(sources.dirs, [PathBuf::from("/etc/palisade")]);
    assert!((sources.relevant)(Path::new("/etc/palisade/toy.conf")));
    assert!(!(sources.relevant)(Path::new(
        "/etc/palisade/.toy.conf.tmp"
    )));
    assert!(!(sources.relevant)(Path::new("/etc/palisade/other.conf")));
    let bare = Sources::file(Path::new("toy.conf"), Duration::from_secs(1));
    assert_eq!(bare.dirs, [PathBuf::from(".")]);
}

#[test]
fn a_burst_of_events_gives_one_reload() {
    let (tx, rx) = mpsc::channel::<u32>();
    // The whole burst is queued before the debounce sees the first event.
    for i in 0..50 {
        tx.send(i).unwrap();
    }
    let reloads = Arc::new(AtomicUsize::new(0));
    let counted = reloads.clone();
    let debouncer = std::thread::spawn(move || {
        watcher::debounce(
            &rx,
            Duration::from_secs(30),
            |_| true,
            || {
                counted.fetch_add(1, Ordering::SeqCst);
            },
        );
    });
    assert!(wait_until(|| reloads.load(Ordering::SeqCst) >= 1));
    drop(tx);
    debouncer.join().unwrap();
    assert_eq!(reloads.load(Ordering::SeqCst), 1);
}

#[test]
fn irrelevant_events_do_not_reload() {
    let (tx, rx) = mpsc::channel::<bool>();
    for relevant in [false, false, true, false] {
        tx.send(relevant).unwrap();
    }
    let reloads = Arc::new(AtomicUsize::new(0));
    let counted = reloads.clone();
    let debouncer = std::thread::spawn(move || {
        watcher::debounce(
            &rx,
            Duration::from_secs(30),
            |r| r,
            || {
                counted.fetch_add(1, Ordering::SeqCst);
            },
        );
    });
    assert!(wait_until(|| reloads.load(Ordering::SeqCst) >= 1));
    tx.send(false).unwrap();
    drop(tx);
    debouncer.join().unwrap();
    assert_eq!(reloads.load(Ordering::SeqCst), 1);
}

#[test]
fn a_reload_in_progress_never_exposes_a_half_loaded_generation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("toy.conf");
    std::fs::write(&path, "a = old\nb = old\n").unwrap();
    let toy = Toy::open(&path);
    let reader = toy.slot.current();

    let barrier = Arc::new(Barrier::new(2));
    *toy.pause.lock().unwrap() = Some(barrier.clone());
    std::fs::write(&path, "a = new\nb = new\n").unwrap();
    let reloading = {
        let toy = toy.clone();
        std::thread::spawn(move || run(&*toy).map_err(|e| e.to_string()))
    };
    // The load has read the new file and is paused before returning it.
    barrier.wait();
    let during = toy.slot.current();
    assert!(
        Arc::ptr_eq(&during, &reader),
        "nothing new is visible mid-load"
    );
    assert_eq!(toy.generation(), 1);
    barrier.wait();
    assert_eq!(reloading.join().unwrap(), Ok(Some(2)));
    assert_eq!(toy.loads.load(Ordering::SeqCst), 1);

    // After the swap: new readers see the whole new generation; old readers keep theirs.
    let after = toy.slot.current();
    assert_eq!(
        *after,
        vec![("a".into(), "new".into()), ("b".into(), "new".into())]
    );
    assert_eq!(
        *reader,
        vec![("a".into(), "old".into()), ("b".into(), "old".into())]
    );
}
