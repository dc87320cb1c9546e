/*
 * crb_cpu.h — the CPU the calling thread runs on, read without a system call:
 * for striping counters per CPU (the metric slots), so that two threads running
 * at the same moment never add to the same cache line.
 *
 * With glibc 2.35 or later the kernel keeps the number in the thread's rseq area
 * (restartable sequences, registered by glibc at thread start): one load from the
 * thread pointer. Without it, sched_getcpu(3) (vDSO). The thread may move to
 * another CPU right after the read: use the number to spread work, never to own
 * a resource.
 */
#ifndef CRB_CPU_H
#define CRB_CPU_H

#include <stdint.h>

#if defined(__linux__) && defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#include <sys/rseq.h>
#define CRB_HAVE_RSEQ 1
#endif

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__linux__)
extern int sched_getcpu(void);
#endif

/** The CPU the caller runs on now; 0 where the platform cannot say. */
static inline uint32_t crb_current_cpu(void)
{
#if defined(CRB_HAVE_RSEQ)
	if (__builtin_expect(__rseq_size != 0, 1)) {
		const struct rseq *area = (const struct rseq *)((const char *)__builtin_thread_pointer() + __rseq_offset);
		/* Relaxed: written by the kernel when it moves the thread; any recent value spreads as well. */
		return __atomic_load_n(&area->cpu_id, __ATOMIC_RELAXED);
	}
#endif
#if defined(__linux__)
	int cpu = sched_getcpu();
	return cpu < 0 ? 0 : (uint32_t)cpu;
#else
	return 0;
#endif
}

#ifdef __cplusplus
}
#endif

#endif /* CRB_CPU_H */
