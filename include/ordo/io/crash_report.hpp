// ordo/io/crash_report.hpp — a fatal signal reported before the process dies of it.
//
// A program that calls install_crash_report("ordo-study") prints, on SIGSEGV, SIGBUS, SIGILL or
// SIGFPE, which signal struck at which address, the instruction it struck at, the call site when
// the program jumped to a null pointer (the return address the call left on the stack: the
// unwinder cannot start from address 0), and the stack as far as it unwinds, with symbols where
// the binary exports them — then the signal takes its default course (a core file where they
// are enabled, exit status 128 + signal), so scripts and debuggers see what they would have.
// A crash on a machine one cannot log into again (a borrowed GPU) leaves its call site in the log.
// Linux with glibc; x86-64 for the instruction and the call site. Torch-free.
#pragma once

#include <execinfo.h>  // backtrace, backtrace_symbols_fd
#include <signal.h>    // sigaction, sigaltstack, raise
#include <ucontext.h>  // ucontext_t
#include <unistd.h>    // write

#include <cstdint>           // std::uintptr_t
#include <cstring>           // std::strlen
#include <initializer_list>  // the signals handled

namespace ordo::io {

namespace detail {

inline const char* crash_program = "ordo";

inline void crash_write(const char* text) {
  for (std::size_t left = std::strlen(text); left > 0;) {  // async-signal-safe
    const auto n = ::write(2, text, left);
    if (n <= 0) return;
    text += n;
    left -= static_cast<std::size_t>(n);
  }
}

inline void crash_write_hex(std::uintptr_t v) {
  char buf[2 + 2 * sizeof v + 1];
  char* p = buf + sizeof buf;
  *--p = '\0';
  do {
    *--p = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v != 0);
  *--p = 'x';
  *--p = '0';
  crash_write(p);
}

inline const char* crash_signal_name(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    default: return "a fatal signal";
  }
}

inline void crash_handler(int sig, siginfo_t* info, void* context) {
  crash_write(crash_program);
  crash_write(": fatal signal ");
  crash_write(crash_signal_name(sig));
  crash_write(" at address ");
  crash_write_hex(reinterpret_cast<std::uintptr_t>(info->si_addr));
#if defined(__x86_64__) && defined(__linux__)
  const auto* uc = static_cast<const ucontext_t*>(context);
  const auto pc = static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
  crash_write(", instruction ");
  crash_write_hex(pc);
  crash_write("\n");
  if (pc < 4096) {  // a call through a null pointer: the caller's return address tops the stack
    void* caller = *reinterpret_cast<void* const*>(static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]));
    crash_write("  called from:\n");
    backtrace_symbols_fd(&caller, 1, 2);
  }
#else
  (void)context;
  crash_write("\n");
#endif
  crash_write("  stack:\n");
  void* frames[64];
  backtrace_symbols_fd(frames, backtrace(frames, 64), 2);
  // The handler was reset on entry (SA_RESETHAND): the signal, raised again, is delivered with
  // its default action once the handler returns.
  ::raise(sig);
}

}  // namespace detail

/// Reports SIGSEGV, SIGBUS, SIGILL and SIGFPE as above (on an alternate stack, so a stack
/// overflow is reported too), each once, under `program`'s name (a string that outlives the
/// process's work, e.g. a literal). Call it early in main.
inline void install_crash_report(const char* program) {
  detail::crash_program = program;
  void* warm[1];
  backtrace(warm, 1);  // loads the unwinder now: the handler must not be the first to need it
  static char alternate[64 * 1024];
  stack_t stack{};
  stack.ss_sp = alternate;
  stack.ss_size = sizeof alternate;
  sigaltstack(&stack, nullptr);
  struct sigaction action {};
  action.sa_sigaction = detail::crash_handler;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  for (const int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE}) sigaction(sig, &action, nullptr);
}

}  // namespace ordo::io
