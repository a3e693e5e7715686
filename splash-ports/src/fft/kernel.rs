//! The FFT's work: the original's input and roots of unity, its checksum and
//! printing, and the six-step transform each thread runs on its rows
//! ([`Kernel`]), on the shared arrays' phase views.

use std::io::Write;
use std::ops::Range;

use super::flags::{Geometry, Options};
use crate::framework::{Proc, Shared, clock_us};

/// Complex double, `[re, im]`, laid out as the C program's pairs of doubles.
pub(crate) type Complex = [f64; 2];
/// The 48-bit linear congruential generator of `srand48`/`drand48`.
#[derive(Debug, Clone)]
pub struct Drand48(u64);

impl Drand48 {
    /// `srand48(seed)`.
    pub fn new(seed: u32) -> Drand48 {
        Drand48((u64::from(seed) << 16) | 0x330e)
    }

    /// `drand48()`: the next value in `[0, 1)`, exactly `X / 2^48`.
    pub fn next_f64(&mut self) -> f64 {
        self.0 = (self.0.wrapping_mul(0x5_deec_e66d).wrapping_add(0xb)) & ((1 << 48) - 1);
        self.0 as f64 / (1u64 << 48) as f64
    }
}

/// The original's `InitX`: `drand48` values (seed 0), row by row, real then
/// imaginary.
pub(super) fn init_x(g: &Geometry, x: &mut [Complex]) {
    let mut r = Drand48::new(0);
    for row in x.chunks_mut(g.stride()).take(g.root_n) {
        for v in &mut row[..g.root_n] {
            let re = r.next_f64();
            let im = r.next_f64();
            *v = [re, im];
        }
    }
}

/// The original's `InitU`: the roots of unity of every butterfly stage, stage
/// `q` (of `2^q` roots) from index `2^q - 1`, for the first √n entries.
pub(super) fn init_u(g: &Geometry, u: &mut [Complex], pi: f64) {
    let mut q = 0;
    while 1usize << q < g.n {
        let n1 = 1usize << q;
        let base = n1 - 1;
        for j in 0..n1 {
            if base + j > g.root_n - 1 {
                return;
            }
            let a = 2.0 * pi * j as f64 / (2 * n1) as f64;
            u[base + j] = [a.cos(), -a.sin()];
        }
        q += 1;
    }
}

/// The original's `InitU2`: `umain2[j][i] = exp(-2πi·ij/n)`.
pub(super) fn init_u2(g: &Geometry, u: &mut [Complex], pi: f64) {
    for (j, row) in u.chunks_mut(g.stride()).take(g.root_n).enumerate() {
        for (i, v) in row[..g.root_n].iter_mut().enumerate() {
            let a = 2.0 * pi * i as f64 * j as f64 / g.n as f64;
            *v = [a.cos(), -a.sin()];
        }
    }
}

/// The original's `CheckSum`: the sum of `re + im` over the matrix, row by row.
pub(super) fn checksum(g: &Geometry, x: &[Complex]) -> f64 {
    let mut cks = 0.0;
    for row in x.chunks(g.stride()).take(g.root_n) {
        for v in &row[..g.root_n] {
            cks += v[0] + v[1];
        }
    }
    cks
}

/// The original's `PrintArray`: `" %4.2f %4.2f"` per point, commas between points,
/// a line break after every 8.
pub(super) fn print_array(g: &Geometry, x: &[Complex], out: &mut dyn Write) -> std::io::Result<()> {
    let mut s = String::new();
    for (i, row) in x.chunks(g.stride()).take(g.root_n).enumerate() {
        for (j, v) in row[..g.root_n].iter().enumerate() {
            use std::fmt::Write as _;
            let _ = write!(s, " {:4.2} {:4.2}", v[0], v[1]);
            let k = i * g.root_n + j;
            if k != g.n - 1 {
                s.push(',');
            }
            if (k + 1).is_multiple_of(8) {
                s.push('\n');
            }
        }
        out.write_all(s.as_bytes())?;
        s.clear();
    }
    out.write_all(b"\n\n")
}

/// The arrays and sizes every thread works on.
pub(super) struct Kernel<'a> {
    pub(super) g: &'a Geometry,
    pub(super) o: &'a Options,
    pub(super) x: &'a Shared<Complex>,
    pub(super) trans: &'a Shared<Complex>,
    pub(super) umain2: &'a Shared<Complex>,
}

impl Kernel<'_> {
    /// The original's `TouchArray`: reads this thread's rows of every array.
    pub(super) fn touch(&self, proc: &Proc<'_>, upriv: &[Complex], rows: Range<usize>) {
        let s = self.g.stride();
        let mut tot = 0.0;
        for u in upriv {
            tot += u[0] + u[1];
        }
        let r = rows.start * s..rows.end * s;
        // Only reads happen in this phase.
        let x = &self.x.read_all(proc)[r.clone()];
        let t = &self.trans.read_all(proc)[r.clone()];
        let u = &self.umain2.read_all(proc)[r];
        for j in 0..rows.len() {
            for i in j * s..j * s + self.g.root_n {
                tot += x[i][0] + x[i][1] + t[i][0] + t[i][1] + u[i][0] + u[i][1];
            }
        }
        std::hint::black_box(tot);
    }

    /// The original's `FFT1D`: one six-step transform (direction 1.0 forward,
    /// -1.0 inverse) of the whole matrix; this thread's part.
    pub(super) fn fft1d(
        &self,
        proc: &mut Proc<'_>,
        direction: f64,
        upriv: &[Complex],
        rows: Range<usize>,
        transtime: &mut u64,
    ) {
        let g = self.g;
        let s = g.stride();
        let n1 = g.root_n;
        let m1 = self.o.m / 2;
        let mine = rows.start * s..rows.end * s;
        let clocked = proc.id() == 0 || self.o.stats;
        let mut timed = |f: &mut dyn FnMut()| {
            let t1 = if clocked { clock_us() } else { 0 };
            f();
            if clocked {
                *transtime += clock_us() - t1;
            }
        };
        proc.barrier();
        {
            // Each thread's own rows of trans; nobody writes umain2 during the run.
            let t = self.trans.own_mut(proc);
            timed(&mut || self.transpose(proc, self.x.read_all(proc), t, rows.clone()));
            let u2 = &self.umain2.read_all(proc)[mine.clone()];
            for (row, urow) in t.chunks_mut(s).zip(u2.chunks(s)) {
                let row = &mut row[..n1];
                fft1d_once(direction, m1, upriv, row);
                twiddle_one_col(direction, &urow[..n1], row);
            }
        }
        proc.barrier();
        {
            let x = self.x.own_mut(proc);
            timed(&mut || self.transpose(proc, self.trans.read_all(proc), x, rows.clone()));
            for row in x.chunks_mut(s) {
                let row = &mut row[..n1];
                fft1d_once(direction, m1, upriv, row);
                if direction == -1.0 {
                    scale(g.n, row);
                }
            }
        }
        proc.barrier();
        timed(&mut || {
            let t = self.trans.own_mut(proc);
            self.transpose(proc, self.x.read_all(proc), t, rows.clone());
        });
        proc.barrier();
        if self.o.test || self.o.print {
            let t = &self.trans.read_all(proc)[mine];
            let x = self.x.own_mut(proc);
            for (src, dst) in t.chunks(s).zip(x.chunks_mut(s)) {
                dst[..n1].copy_from_slice(&src[..n1]);
            }
        }
        proc.barrier();
    }

    /// The original's `Transpose`: this thread's rows of `dest` from its columns of
    /// `src`, in blocks that fit the cache lines, starting with the next thread's
    /// rows of `src` and ending with its own.
    fn transpose(
        &self,
        proc: &Proc<'_>,
        src: &[Complex],
        dest: &mut [Complex],
        rows: Range<usize>,
    ) {
        let g = self.g;
        let (me, p) = (proc.id(), proc.nprocs());
        let n1p = g.stride();
        let first = rows.start;
        let mut blksize = rows.len();
        let mut numblks = (2 * blksize) / g.cache_lines;
        if numblks * g.cache_lines != 2 * blksize {
            numblks += 1;
        }
        blksize /= numblks;
        let row_count = g.root_n / p;
        // In a transpose phase nobody writes src; dest: this thread's rows.
        debug_assert_eq!(dest.len(), rows.len() * n1p);
        let order = (me + 1..p).chain(0..me).chain(std::iter::once(me));
        for l in order {
            let mut v_off = l * row_count;
            for _ in 0..numblks {
                let mut h_off = first;
                for _ in 0..numblks {
                    for i in 0..blksize {
                        let v = v_off + i;
                        let srow = &src[v * n1p + h_off..v * n1p + h_off + blksize];
                        for (j, val) in srow.iter().enumerate() {
                            let h = h_off + j;
                            dest[(h - first) * n1p + v] = *val;
                        }
                    }
                    h_off += blksize;
                }
                v_off += blksize;
            }
        }
    }
}

/// The original's `TwiddleOneCol`: multiply a row by its roots of unity.
fn twiddle_one_col(direction: f64, u: &[Complex], x: &mut [Complex]) {
    for (v, w) in x.iter_mut().zip(u) {
        let omega_r = w[0];
        let omega_c = direction * w[1];
        let [x_r, x_c] = *v;
        *v = [omega_r * x_r - omega_c * x_c, omega_r * x_c + omega_c * x_r];
    }
}

/// The original's `Scale`: divide by `n`.
fn scale(n: usize, x: &mut [Complex]) {
    let n = n as f64;
    for v in x {
        v[0] /= n;
        v[1] /= n;
    }
}

/// The original's `Reverse`: bit-reversal permutation of `2^m` points.
fn reverse(m: u32, x: &mut [Complex]) {
    if m == 0 {
        return;
    }
    for k in 0..x.len() {
        let j = (k as u32).reverse_bits() as usize >> (32 - m);
        if j > k {
            x.swap(j, k);
        }
    }
}

/// The original's `FFT1DOnce`: an in-place radix-2 FFT of `2^m` points, roots of
/// stage `q` at `u[2^(q-1) - 1..]`.
pub(crate) fn fft1d_once(direction: f64, m: u32, u: &[Complex], x: &mut [Complex]) {
    reverse(m, x);
    for q in 1..=m {
        let l = 1usize << q;
        let lstar = l / 2;
        let u1 = &u[lstar - 1..lstar - 1 + lstar];
        for block in x.chunks_exact_mut(l) {
            let (x1, x2) = block.split_at_mut(lstar);
            for ((a, b), w) in x1.iter_mut().zip(x2.iter_mut()).zip(u1) {
                let omega_r = w[0];
                let omega_c = direction * w[1];
                let [x_r, x_c] = *b;
                let tau_r = omega_r * x_r - omega_c * x_c;
                let tau_c = omega_r * x_c + omega_c * x_r;
                let [x_r, x_c] = *a;
                *b = [x_r - tau_r, x_c - tau_c];
                *a = [x_r + tau_r, x_c + tau_c];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fft::flags::Options;
    use crate::framework::{Machine, Partition, RunConfig};

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn drand48_matches_the_c_library_sequence() {
        // glibc: srand48(0); drand48() x3.
        let mut r = Drand48::new(0);
        let got: Vec<f64> = (0..3).map(|_| r.next_f64()).collect();
        // X1 = (0x5DEECE66D * 0x330E + 0xB) mod 2^48, independently.
        let x1 = (0x5DEE_CE66Du128 * 0x330E + 0xB) % (1u128 << 48);
        assert_eq!(got[0], x1 as f64 / 2f64.powi(48));
        assert!(got.iter().all(|v| (0.0..1.0).contains(v)));
        assert_ne!(got[1], got[2]);
    }

    /// A naive DFT, `X[k] = Σ x[j] e^{-2πi jk/n}` (roots made with the true π, not
    /// the original's 3.1416, so the FFT is exactly a DFT up to rounding). The
    /// result is in `trans` in natural order: `X[k]` at row `k / √n`, column
    /// `k mod √n`.
    #[test]
    fn the_kernel_computes_a_dft() {
        let o = Options::parse(&args(&["-m6", "-p2"])).unwrap();
        let g = Geometry::new(&o).unwrap();
        let cfg = RunConfig::default();
        let machine = Machine::new(&cfg, 2).unwrap();
        let len = g.elements();
        let parts = Partition::even(len, 2);
        let mut x = machine.shared::<Complex>("t.x", len, &parts).unwrap();
        let mut trans = machine.shared::<Complex>("t.trans", len, &parts).unwrap();
        let mut umain2 = machine.shared::<Complex>("t.umain2", len, &parts).unwrap();
        let mut umain = vec![[0.0; 2]; g.root_n];
        init_x(&g, x.get_mut());
        init_u2(&g, umain2.get_mut(), std::f64::consts::PI);
        init_u(&g, &mut umain, std::f64::consts::PI);
        let input: Vec<Complex> = {
            let xs = x.get_mut();
            (0..g.n)
                .map(|i| xs[(i / g.root_n) * g.stride() + i % g.root_n])
                .collect()
        };
        let k = Kernel {
            g: &g,
            o: &o,
            x: &x,
            trans: &trans,
            umain2: &umain2,
        };
        machine
            .run(|p| {
                let mut tt = 0;
                k.fft1d(p, 1.0, &umain[..g.root_n - 1], g.rows(p.id(), 2), &mut tt);
            })
            .unwrap();
        let t = trans.get_mut();
        let n = g.n;
        for kk in 0..n {
            let (mut re, mut im) = (0.0, 0.0);
            for (j, v) in input.iter().enumerate() {
                let a = 2.0 * std::f64::consts::PI * ((j * kk) % n) as f64 / n as f64;
                re += v[0] * a.cos() + v[1] * a.sin();
                im += v[1] * a.cos() - v[0] * a.sin();
            }
            let got = t[(kk / g.root_n) * g.stride() + kk % g.root_n];
            assert!(
                (got[0] - re).abs() < 1e-9 && (got[1] - im).abs() < 1e-9,
                "X[{kk}] = {got:?}, DFT {re} {im}"
            );
        }
    }
}
