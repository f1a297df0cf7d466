//! The machine's side of a load test: the open-file limit (every socket is
//! a file, twice over on loopback) and CPU time per thread group, read
//! from /proc, so the stack's and the generator's CPU are reported apart.

use std::collections::BTreeMap;

/// Raises the soft open-file limit to the hard limit. Errors with what to
/// do when even that cannot hold `needed` descriptors.
pub fn raise_fd_limit(needed: u64) -> Result<u64, String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err("could not read the open-file limit (getrlimit)".into());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    if limit.rlim_cur < needed {
        // A privileged process may raise the hard limit too (up to
        // fs.nr_open).
        let raised = libc::rlimit {
            rlim_cur: needed,
            rlim_max: needed.max(limit.rlim_max),
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(needed);
        }
    }
    if limit.rlim_cur < needed {
        return Err(format!(
            "this run needs about {needed} open files but the limit is {} (hard limit {}); \
             raise it (e.g. `ulimit -n {needed}` as root, or LimitNOFILE in systemd) or use fewer --connections",
            limit.rlim_cur, limit.rlim_max
        ));
    }
    Ok(limit.rlim_cur)
}

/// CPU seconds (user + system) used so far by this process's threads,
/// grouped by thread-name prefix (the part before the first '-').
pub fn cpu_seconds_by_thread_group() -> BTreeMap<String, f64> {
    let mut groups = BTreeMap::new();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return groups;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // Fields: pid (comm) state ... utime(14) stime(15); comm may
        // contain spaces, so split after its closing parenthesis.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let (Some(utime), Some(stime)) = (fields.get(11), fields.get(12)) else {
            continue;
        };
        let secs =
            (utime.parse::<f64>().unwrap_or(0.0) + stime.parse::<f64>().unwrap_or(0.0)) / ticks;
        let group = comm.split('-').next().unwrap_or(comm).to_string();
        *groups.entry(group).or_insert(0.0) += secs;
    }
    groups
}
