//! Memory per cached identity: the growth of live heap bytes (counted by a global allocator that
//! wraps the system's) and of the resident set while 100,000 more identities are cached; then the
//! same for 100,000 sessions a layer opened and keeps (`SessionConfig::opened_session_cache`).
//!
//! `cargo bench --bench memory`. Its own binary, so that counting allocations slows no timing.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::dingtalk::{cache, client_for, dingtalk, issue_codes, layer_with};
use support::{runtime, wanted};

/// Identities whose memory is measured.
const IDENTITIES: usize = 100_000;
/// Identities cached before the first reading, so that what every cache holds however small (the
/// client, its connections, the token, the cache's own tables) is not counted per identity.
const WARM: usize = 1_000;

/// The system allocator, keeping count of the bytes handed out and not yet freed.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call goes to `System` unchanged; only the counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            counted(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            counted(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        LIVE_ALLOCATIONS.fetch_sub(1, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_ptr = unsafe { System.realloc(ptr, layout, new_size) };
        if !new_ptr.is_null() {
            LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        new_ptr
    }
}

fn counted(size: usize) {
    LIVE_BYTES.fetch_add(size, Ordering::Relaxed);
    LIVE_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The memory of the process at one moment.
#[derive(Clone, Copy)]
struct Reading {
    heap_bytes: usize,
    allocations: usize,
    resident_bytes: usize,
}

impl Reading {
    fn now() -> Self {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux's /proc/self/statm");
        let resident_pages: usize = statm
            .split_whitespace()
            .nth(1)
            .and_then(|pages| pages.parse().ok())
            .expect("the resident set in statm");
        Self {
            heap_bytes: LIVE_BYTES.load(Ordering::Relaxed),
            allocations: LIVE_ALLOCATIONS.load(Ordering::Relaxed),
            // 4 KiB pages, as on the x86-64 Linux this runs on.
            resident_bytes: resident_pages * 4096,
        }
    }

    /// A reading once the exchanges' tasks and connections have wound down.
    async fn settled() -> Self {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Self::now()
    }
}

fn main() {
    if wanted("memory") {
        identities();
    }
    if wanted("memory/sessions") || wanted("memory") {
        sessions();
    }
}

/// The heap and resident set kept per opened session: 100,000 users' cookies sent once each
/// through a layer with room for them; the slots' array, reserved when the layer is built, is
/// reported apart.
fn sessions() {
    use tower::{Layer, ServiceExt};
    const USERS: usize = 100_000;
    let runtime = runtime();
    let (reserved, before, after) = runtime.block_on(async {
        let dingtalk = dingtalk().await;
        let empty = Reading::settled().await;
        let session = tower_dingtalk_auth::SessionConfig::new(support::dingtalk::session_key())
            .opened_session_cache(131_072);
        let layer = layer_with(client_for(&dingtalk))
            .session(session)
            .build()
            .expect("a layer");
        let built = Reading::settled().await;
        let sessions = layer.sessions().expect("sessions");
        let cookies: Vec<String> = (0..USERS)
            .map(|i| {
                let user = tower_dingtalk_auth::AuthenticatedDingTalkUser::builder(
                    format!("user{i:06}"),
                    "张三",
                )
                .unionid("gliiW0piiii02zU0iiiiiiiiiiiiiiiiiiiE")
                .device_id("a6e1a5b2c4d8e0f7a3b9c1d2e4f6a8b0")
                .build();
                let cookie = sessions.cookie_header(&user);
                cookie.to_str().expect("ASCII").to_owned()
            })
            .collect();
        let service = layer.layer(support::hello_service());
        let before = Reading::settled().await;
        for cookie in &cookies {
            let request = support::get_with(Some(("cookie", cookie)));
            let response = service.clone().oneshot(request).await.expect("an answer");
            assert_eq!(response.status(), 200, "a session opens");
        }
        let reserved = built.heap_bytes.saturating_sub(empty.heap_bytes);
        (reserved, before, Reading::settled().await)
    });
    let per = |total: usize| total as f64 / USERS as f64;
    let heap = after.heap_bytes.saturating_sub(before.heap_bytes);
    let resident = after.resident_bytes.saturating_sub(before.resident_bytes);
    println!(
        "\n| opened sessions kept | live heap growth | per session | RSS growth | per session \
         | layer built (slots reserved) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {USERS} | {:.1} MiB | {:.0} B | {:.1} MiB | {:.0} B | {:.1} MiB |",
        mib(heap),
        per(heap),
        mib(resident),
        per(resident),
        mib(reserved),
    );
}

/// The memory kept per cached identity.
fn identities() {
    let runtime = runtime();
    let (before, after, added) = runtime.block_on(async {
        let dingtalk = dingtalk().await;
        let layer = layer_with(client_for(&dingtalk).cache_capacity((WARM + IDENTITIES) as u64))
            .build()
            .expect("a layer");
        // Issued up front: the fake DingTalk's record of its codes is not the layer's memory.
        let warm = issue_codes(&dingtalk, WARM);
        let codes = issue_codes(&dingtalk, IDENTITIES);
        cache(&layer, &warm).await;
        let count_before = layer.cached_identities().await;
        let before = Reading::settled().await;
        cache(&layer, &codes).await;
        let count_after = layer.cached_identities().await;
        let after = Reading::settled().await;
        (before, after, count_after - count_before)
    });
    assert_eq!(added, IDENTITIES as u64, "every identity stays cached");
    let growth = |of: fn(&Reading) -> usize| of(&after).saturating_sub(of(&before));
    let (heap, allocations, resident) = (
        growth(|r| r.heap_bytes),
        growth(|r| r.allocations),
        growth(|r| r.resident_bytes),
    );
    let per_identity = |total: usize| total as f64 / added as f64;
    println!(
        "| identities added | live heap growth | per identity | allocations per identity \
         | RSS growth | per identity |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {added} | {:.1} MiB | {:.0} B | {:.1} | {:.1} MiB | {:.0} B |",
        mib(heap),
        per_identity(heap),
        per_identity(allocations),
        mib(resident),
        per_identity(resident),
    );
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
