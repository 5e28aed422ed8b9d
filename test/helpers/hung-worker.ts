// A worker that never gets as far as saying it is ready: its first statement spins forever.

for (;;);
