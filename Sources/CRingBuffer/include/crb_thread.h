/*
 * crb_thread.h — one pointer per thread, for the emit path's per-thread state (the Swift
 * EmitThreadState: its scratch-buffer pool and id generator).
 *
 * A thread-local variable is one load from the thread pointer; pthread_getspecific(3) cost ~17
 * instructions a call and the Swift global holding the key another ~7 (its lazy initialisation
 * check), twice a span. The owner still registers a pthread key for the destructor that frees the
 * state at thread exit: this slot is only the fast way to find it, and the destructor clears it.
 *
 * initial-exec: the slot is reached at a fixed offset from the thread pointer (no __tls_get_addr
 * call), in an executable or in a shared object loaded at start-up; 8 bytes fit in the static TLS
 * surplus glibc keeps for shared objects opened later.
 */
#ifndef CRB_THREAD_H
#define CRB_THREAD_H

#ifdef __cplusplus
extern "C" {
#endif

/** The calling thread's slot; NULL until crb_thread_set() on this thread. Defined in ring.c. */
extern _Thread_local void *crb_thread_slot __attribute__((tls_model("initial-exec")));

/** The value this thread stored, or NULL. Plain access: only the owning thread reads or writes it. */
static inline void *crb_thread_get(void)
{
	return crb_thread_slot;
}

/** Stores `value` in the calling thread's slot. */
static inline void crb_thread_set(void *value)
{
	crb_thread_slot = value;
}

#ifdef __cplusplus
}
#endif

#endif /* CRB_THREAD_H */
