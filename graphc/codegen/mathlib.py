"""Vectorizable scalar math functions for generated Numba kernels.

Numba from PyPI has no SVML, so `np.exp`, `np.tanh`, ... inside an @njit loop are scalar libm
calls and the loop does not vectorize. The functions here are branch-free range reduction plus
polynomial, written so that LLVM inlines them into the caller's loop and vectorizes it:

    from graphc.codegen.mathlib import tanh_f32

    @njit(error_model="numpy", fastmath={"contract"})
    def kernel(x, out):
        for i in range(x.shape[0]):
            out[i] = tanh_f32(x[i])

Interface: `FUNCS[(op, dtype)]` is the @njit function for op in OPS ("exp", "exp2", "expm1",
"log", "log2", "log10", "log1p", "tanh", ..., "cbrt", ...) or BINARY_OPS ("atan2", "hypot",
"floor_divide", "remainder") and dtype "f32" or "f64";
`source_name(op, dtype)` is its importable name ("tanh_f32"). A "_f32" function converts its
argument to float32 and returns float32 (likewise "_f64"): pass it values of that dtype.

Inlining and vectorization
--------------------------
Every function is `@njit(cache=True, error_model="numpy", fastmath=False, forceinline=True)`:

* forceinline=True marks the LLVM function `alwaysinline`. Relying on LLVM's inliner alone is
  not enough: its size threshold rejected softplus_f32/f64 and erf_f64 (a call stayed in the
  loop, which then did not vectorize), and other functions were not far below it. Numba's
  inline="always" is not used: it inlines at the Numba IR level, so the *caller's* fastmath
  flags and error model would apply to our code ("reassoc" may rewrite (x - k*hi) - k*lo or
  x - (u - 1), which the range reductions and log1p rely on).
* fastmath=False must be given explicitly: when a function has no fastmath option of its own,
  Numba compiles it with the flags of the first caller that needs it (measured: 522 `reassoc`
  flags in our code after a first call from a fastmath={"reassoc", ...} kernel, 0 with the
  explicit option). LLVM's fast-math flags are per instruction, so after inlining our
  instructions stay strict inside a fastmath kernel. The functions give bit-identical results
  when called from a kernel compiled with fastmath={"contract", "reassoc", "arcp"} (tested). Do
  not rely on nnan/ninf in callers: NaN and inf handling is done with comparisons.
* error_model="numpy": a division has no zero check (a branch that would block vectorization).
* Branch-free: `_sel(c, a, b)` emits an LLVM `select`; bit patterns are moved between floats
  and integers with `bitcast` (`_bits`, `_f32_from_bits`, `_f64_from_bits`), 2^k is built from
  its exponent bits, rounding uses llvm.rint (one roundps/roundpd). There are no libm calls and
  no tables. No instruction may be contracted into an FMA (none is, even inside a "contract"
  kernel), so results do not depend on the CPU or on how the caller was compiled. One
  exception: sin, cos and tan of huge arguments (|x| >= TRIG_FAST_LIMIT) are redone out of
  line by an exact Payne-Hanek reduction, through a call LLVM knows a masked vector variant
  of; the vectorized loop calls that variant once per vector and it returns at once when no
  lane is huge (see "sin, cos, tan of huge arguments" in the code).
* cache=True: a second process loads the functions from Numba's cache and still inlines them
  (checked: cache hits, and the new kernel's IR has vector types and no call). Numba's cache of
  a *caller* does not notice when this file changes; graphc's code generator salts the names
  of its generated modules with a hash of graphc/codegen/*.py, which includes this file.

Checked (on this AVX-512 machine) by inspecting `kernel.inspect_llvm()` of a loop like the one
above for every function: no call is left (sin, cos, tan: only the per-vector call of their
huge-argument variant), and the loop body uses vector types; tests/test_mathlib.py asserts
this for each function in a loop of its own. The per-vector call costs sin/cos/tan loops
0-10% in float64 and 10-20% in float32 in a loop doing nothing else (measured on this shared
machine, 1M elements, the minimum of 31 runs; within noise in larger kernels and in the tape
machine's 2,000-op tanh/sin chain). Timing on this machine
(2 cores, AVX-512, shared), 4M elements, median of 9 runs, ns per element
(benchmarks/mathlib_bench.py): numpy = the ufunc on the array (sigmoid: 1 / (1 + np.exp(-x)),
softplus: np.logaddexp(0, x), erf: scipy.special.erf), libm = an @njit loop calling the scalar
np/math function, ours = the same loop calling this module's function:

    function        numpy     libm     ours  libm/ours  numpy/ours
    exp_f32          0.37     1.92     0.24       8.0x        1.5x
    expm1_f32        0.48    11.96     0.28      42.1x        1.7x
    log_f32          0.31     1.94     0.38       5.2x        0.8x
    log1p_f32        0.51     8.34     0.43      19.3x        1.2x
    tanh_f32         0.19    12.90     0.46      28.3x        0.4x
    sigmoid_f32      0.90     2.07     0.29       7.1x        3.1x
    softplus_f32    11.65    13.67     1.20      11.4x        9.7x
    erf_f32         14.56    13.73     0.46      29.5x       31.3x
    sin_f32          1.01     9.97     0.75      13.2x        1.3x
    cos_f32          1.05     7.80     0.74      10.6x        1.4x
    tan_f32          0.44    12.85     0.76      16.9x        0.6x
    exp_f64          1.27     7.33     0.77       9.6x        1.7x
    expm1_f64        1.28     6.79     0.92       7.3x        1.4x
    log_f64          1.01     2.73     0.81       3.4x        1.2x
    log1p_f64        1.03     8.34     0.83      10.1x        1.2x
    tanh_f64         1.11    14.68     1.36      10.8x        0.8x
    sigmoid_f64      2.68     4.59     0.94       4.9x        2.9x
    softplus_f64    12.51    13.17     2.95       4.5x        4.2x
    erf_f64         14.21    14.17     2.38       6.0x        6.0x
    sin_f64         16.67    17.30     1.07      16.1x       15.5x
    cos_f64         17.04    17.46     1.09      16.1x       15.7x
    tan_f64          1.28    22.40     1.13      19.8x        1.1x

Accuracy
--------
Max error in ulps against the exact result rounded to the working precision. float32: every
one of the 2^32 inputs (reference: glibc's float64 functions, rounded; no NaN mismatch either).
float64: 12.8M inputs: bit patterns evenly spread over all of them (every binade), dense ranges,
the overflow/underflow edges and the floats nearest to multiples of pi/2 (reference: long
double; for erf glibc's erf, itself within 0.8 ulp: an mpmath check puts erf_f64 at 1.53 ulp).

    function   float32   float64
    exp          1         1
    expm1        1         2
    log          1         1
    log1p        1         1
    tanh         1         1
    sigmoid      2         2
    softplus     2         2
    erf          1         2
    sin          1         2       over all finite x, huge ones included (see below)
    cos          1         2
    tan          1         4
    sinh         1*        2       * float32 rows marked *: computed in float64 and rounded
    cosh         1*        2         once; 0 ulp against glibc's float64 result rounded, on
    asin         1*        2         every one of the 2^32 inputs for the one-argument
    acos         1*        2         functions, on 8M+ sampled pairs for atan2 and hypot.
    atan         1*        1         float64 rows: 4M+ sampled inputs against long double.
    asinh        1*        2       atan: Cephes' rational approximation and reduction; asin,
    acosh        1*        2       acos, atan2 from it; asinh, acosh, atanh from log1p/log;
    atanh        1*        2       sinh from expm1, cosh from exp; both overflow exactly where
    atan2        1*        2       the result does (not where exp does). hypot scales by a
    hypot        1*        1       power of two. floor_divide is NumPy's npy_divmod: exact.
    exp2         1*        1       remainder is NumPy's npy_remainder: exact, a zero result
    log2         1*        1       with the divisor's sign. exp2, log2, log10, cbrt float32:
    log10        1*        1       0 ulp against glibc's float64 function rounded, on every
    cbrt         1*        1       one of the 2^32 inputs; float64: 1 ulp against glibc on
                                   4M sampled inputs. log2(2^k) = k, log10(10^k) = k exactly.

Special values follow NumPy: NaN in, NaN out; exp(-inf) = 0, exp(inf) = inf, expm1(-inf) = -1;
log(0) = -inf, log(x < 0) = NaN, log1p(-1) = -inf, log1p(x < -1) = NaN; tanh, erf -> +-1;
sigmoid(+-inf) = 1, 0; softplus(-inf) = 0, softplus(inf) = inf; sin, cos, tan of +-inf = NaN;
odd functions keep the sign of zero (tanh(-0.0) = -0.0). Results are correct through overflow
and underflow: exp overflows exactly where the rounded result does (float32 past 88.72283,
float64 past 709.782712893384) and returns subnormals down to the last nonzero value
(-103.97208, -745.1332191019411); sigmoid(x) for x < -88.7 in float32 is the correct subnormal
or 0, where 1 / (1 + np.exp(-x)) gives 0 through overflow.

sin/cos/tan: Cody-Waite reduction x = k pi/2 + r with pi/2 split in four (float32 inputs,
reduced in float64) or five (float64) parts, exact for |k| < 2^35 / 2^29, used for
|x| < TRIG_FAST_LIMIT (1.5 * 2^35 for float32, 1.5 * 2^29 = 8.05e8 for float64). Larger finite
arguments take a Payne-Hanek reduction out of line: the 53-bit mantissa times a 256-bit
window of the bits of 2/pi (a table of 64-bit words computed at import from Machin's formula
with Python integers) gives x 2/pi mod 4 to about 126 bits at any exponent, enough for the
floats nearest to multiples of pi/2 (float64: 6381956970095103 * 2^797, whose reduced argument
is 4.7e-19); r is kept as a double-double and the result corrected to first order for its
low part. Measured against long double (glibc reduces exactly): the bounds above hold over
every binade up to the largest finite value. NumPy's float64 cos is 8 ulp off at that worst
case; ours is correctly rounded there. float32 arguments beyond the limit use the float64 path and
round once.

Algorithms (coefficients: own minimax fits, Remez exchange in 60-digit mpmath, weighted for
relative error unless noted, rounded to the working precision):
* exp: k = rint(x / ln2), r = x - k ln2 (ln2 in two parts, k*hi exact), exp(r) = 1 + r +
  r^2 P(r), degree 6 / 11; scaled by 2^k1 * 2^k2 (k = k1 + k2) so subnormal results round once.
* expm1: same reduction, expm1(r) = r + r^2/2 + r^3 P(r), expm1(x) = 2^k (expm1(r) + 1 - 2^-k).
* log: x = 2^e m, m in [sqrt(1/2), sqrt(2)), f = m - 1, s = f / (2 + f),
  log(m) = f - f^2/2 + s (f^2/2 + z P(z)) with z = s^2 (P degree 3 / 7).
* log1p: u = 1 + x and its exact rounding error c; log(u) as above plus c/u.
* tanh: x + x^3 P(x^2) for |x| < 0.55, else 1 - 2 / (exp(2|x|) + 1).
* sigmoid: e = exp(-|x|); 1 / (1 + e) or e / (1 + e). softplus: max(x, 0) + log1p(exp(-|x|)).
* erf: x + x P(x^2) for |x| < 0.8; beyond, float32: 1 - erfc with erfc a degree-12 polynomial
  on [0.8, 2.2] and [2.2, 3.93] (coefficients chosen per lane with selects); float64:
  1 - exp(-x^2) Q(x) with x^2 split exactly (Dekker) and Q ~ exp(x^2) erfc(x) of degree 18 on
  [0.8, 2.3] and [2.3, 6].
* exp2: k = rint(x), r = x - k exact, 2^r = exp(r ln2) with r ln2 as a Dekker product
  th + tl; scaled as exp. log2, log10: log(m) split hi + lo with hi of 21 bits, so hi times the
  leading bits of 1/ln2 (1/ln10) and e log10(2) are exact (the pieces add small to large).
* cbrt: exponent-bits guess, four Newton steps in float64 on a value scaled into [2^-1000,
  2^1000] by an exact power of two.
* sin/cos: polynomials on |r| <= pi/4, quadrant by selects; tan = sin/cos or -cos/sin. float32
  inputs are reduced and evaluated in float64 (half the vector width, a correctly rounded
  result in almost all cases).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# No fastmath: every instruction keeps strict IEEE semantics even after LLVM inlines the function
# into a kernel compiled with fastmath flags (LLVM fast-math flags are per instruction).
# error_model="numpy": a float division never grows a zero-division check (a branch + raise).
_jit = njit(cache=True, error_model="numpy", fastmath=False, forceinline=True)

# ---------------------------------------------------------------------------------------------
# LLVM-level helpers: each becomes one instruction (no call, no branch)


@intrinsic
def _sel(typingctx, cond, a, b):
    """`a if cond else b` as an LLVM select (both operands are always evaluated).

    Floats must have the same type (so a stray float64 in float32 code is a typing error);
    integers are unified."""
    if not isinstance(cond, types.Boolean):
        return None
    if isinstance(a, types.Integer) and isinstance(b, types.Integer):
        ret = typingctx.unify_pairs(a, b)
    elif a == b:
        ret = a
    else:
        return None

    def codegen(context, builder, sig, args):
        va = context.cast(builder, args[1], sig.args[1], ret)
        vb = context.cast(builder, args[2], sig.args[2], ret)
        return builder.select(args[0], va, vb)

    return ret(cond, a, b), codegen


def _float_intrinsic(name, nargs):
    def typer(typingctx, *args):
        if len(args) != nargs or not isinstance(args[0], types.Float):
            return None
        if any(a != args[0] for a in args):
            return None

        def codegen(context, builder, sig, llargs):
            ty = llargs[0].type
            suffix = "f32" if ty == ir.FloatType() else "f64"
            fnty = ir.FunctionType(ty, [ty] * nargs)
            fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.{name}.{suffix}")
            return builder.call(fn, llargs)

        return args[0](*args), codegen

    return typer


@intrinsic
def _rint(typingctx, x):
    """Round to the nearest integer, ties to even (llvm.rint)."""
    return _float_intrinsic("rint", 1)(typingctx, x)


@intrinsic
def _copysign(typingctx, x, y):
    """|x| with the sign bit of y (llvm.copysign)."""
    return _float_intrinsic("copysign", 2)(typingctx, x, y)


@intrinsic
def _bits(typingctx, x):
    """The IEEE bit pattern of a float32 (as int32) or float64 (as int64)."""
    if x == types.float32:
        ret = types.int32
    elif x == types.float64:
        ret = types.int64
    else:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(sig.return_type))

    return ret(x), codegen


def _from_bits(width, fty, nbty):
    def typer(typingctx, i):
        if not isinstance(i, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            v = args[0]
            ity = ir.IntType(width)
            if v.type.width > width:
                v = builder.trunc(v, ity)
            elif v.type.width < width:
                v = builder.sext(v, ity)
            return builder.bitcast(v, fty)

        return nbty(i), codegen

    return typer


@intrinsic
def _f32_from_bits(typingctx, i):
    """The float32 whose bit pattern is the low 32 bits of integer i."""
    return _from_bits(32, ir.FloatType(), types.float32)(typingctx, i)


@intrinsic
def _f64_from_bits(typingctx, i):
    """The float64 whose bit pattern is the low 64 bits of integer i."""
    return _from_bits(64, ir.DoubleType(), types.float64)(typingctx, i)


# ---------------------------------------------------------------------------------------------
# constants. Typed globals: Numba freezes them into the code with their NumPy type, so float32
# code never silently promotes to float64.

_f4 = np.float32
_f8 = np.float64

_ZERO_F32, _HALF_F32, _ONE_F32, _TWO_F32 = _f4(0.0), _f4(0.5), _f4(1.0), _f4(2.0)
_ZERO_F64, _HALF_F64, _ONE_F64, _TWO_F64 = _f8(0.0), _f8(0.5), _f8(1.0), _f8(2.0)
_INF_F32, _NAN_F32 = _f4(np.inf), _f4(np.nan)
_INF_F64, _NAN_F64 = _f8(np.inf), _f8(np.nan)

# ln2 = HI + LO, HI with few significant bits so k * HI is exact for every k that occurs
_LN2HI_F32 = _f4(0.693145751953125)  # 16 bits
_LN2LO_F32 = _f4(1.428606765330187e-06)
_LN2HI_F64 = _f8(0.6931471805598903)  # 42 bits
_LN2LO_F64 = _f8(5.497923018708371e-14)
_LOG2E_F32 = _f4(1.4426950408889634)
_LOG2E_F64 = _f8(1.4426950408889634)

# Polynomial coefficients: minimax fits (Remez exchange, weighted as noted, 60-digit mpmath
# arithmetic, then rounded to the working precision). Max weighted error in the comment.

# exp(r) = 1 + r + r^2 * P(r), |r| <= 0.347; relative error 2^-28.2 / 2^-56.6
_EXP_F32 = (
    _f4(0.4999999403953552), _f4(0.16666515171527863), _f4(0.041668083518743515),
    _f4(0.00836934894323349), _f4(0.0013840398751199245),
)  # fmt: skip
_EXP_F64 = (
    _f8(0.5000000000000011), _f8(0.1666666666666641), _f8(0.04166666666652894),
    _f8(0.008333333333495927), _f8(0.0013888888943997717), _f8(0.00019841269504288454),
    _f8(2.4801492676618075e-05), _f8(2.7557587600833005e-06), _f8(2.7630411978976e-07),
    _f8(2.4999937396938468e-08),
)  # fmt: skip
# expm1(r) = r + r^2/2 + r^3 * P(r), |r| <= 0.347; relative error 2^-31.0 / 2^-59.1
_EXPM1_F32 = (
    _f4(0.1666666567325592), _f4(0.04166646674275398), _f4(0.008333643898367882),
    _f4(0.001393504673615098), _f4(0.0001966348645510152),
)  # fmt: skip
_EXPM1_F64 = (
    _f8(0.16666666666666677), _f8(0.041666666666666574), _f8(0.008333333333322058),
    _f8(0.0013888888888943154), _f8(0.00019841269885240392), _f8(2.4801587197518476e-05),
    _f8(2.7557244958158047e-06), _f8(2.7557387352096517e-07), _f8(2.5108814988016294e-08),
    _f8(2.087891666520331e-09),
)  # fmt: skip
# 2*atanh(s) = 2s + s * z * P(z), z = s^2 <= 0.02950 (|s| <= (sqrt2-1)/(sqrt2+1));
# absolute error 2^-29.2 / 2^-58.1
_LOG_F32 = (_f4(0.6666677594184875), _f4(0.39977553486824036), _f4(0.2987212836742401))
_LOG_F64 = (
    _f8(0.6666666666666735), _f8(0.3999999999940749), _f8(0.2857142874414179),
    _f8(0.22222198378445793), _f8(0.18183575166678856), _f8(0.15313755739331783),
    _f8(0.14799066217146087),
)  # fmt: skip
# tanh(x) = x + x^3 * P(x^2), |x| <= 0.55; relative error 2^-29.7 / 2^-59.5
_TANH_F32 = (
    _f4(-0.33333316445350647), _f4(0.13332544267177582), _f4(-0.0538475476205349),
    _f4(0.02105071395635605), _f4(-0.00624284939840436),
)  # fmt: skip
_TANH_F64 = (
    _f8(-0.333333333333333), _f8(0.13333333333326597), _f8(-0.053968253963746965),
    _f8(0.021869488385454144), _f8(-0.008863232594674577), _f8(0.003592091960201875),
    _f8(-0.0014555423813531949), _f8(0.0005884425254999578), _f8(-0.0002333764493833042),
    _f8(8.33089332752211e-05), _f8(-1.948993716433778e-05),
)  # fmt: skip
# erf(x) = x + x * P(x^2), |x| <= 0.8; relative error 2^-28.1 / 2^-55.3
_ERF_SMALL_F32 = (
    _f4(0.12837916612625122), _f4(-0.37612608075141907), _f4(0.11283162236213684),
    _f4(-0.026822242885828018), _f4(0.005086865741759539), _f4(-0.000654224946629256),
)  # fmt: skip
_ERF_SMALL_F64 = (
    _f8(0.12837916709551256), _f8(-0.3761263890318362), _f8(0.11283791670946879),
    _f8(-0.02686617064313603), _f8(0.005223977600628631), _f8(-0.0008548325218770894),
    _f8(0.0001205525092285904), _f8(-1.4923245005309803e-05), _f8(1.6416551917580922e-06),
    _f8(-1.5823960022489352e-07), _f8(1.1067437932664702e-08),
)  # fmt: skip
# float32: erfc(x) = P(x - m) on [0.8, 2.2] (m = 1.5) and [2.2, 3.93] (m = 3.065);
# absolute error 2^-28.3 / 2^-35.8
_ERFC_A_F32 = (
    _f4(0.0338948518037796), _f4(-0.11893028765916824), _f4(0.17839543521404266),
    _f4(-0.1387520432472229), _f4(0.04459895193576813), _f4(0.014867027290165424),
    _f4(-0.01932721771299839), _f4(0.00473783677443862), _f4(0.00236831814981997),
    _f4(-0.0016920177731662989), _f4(7.700802234467119e-05), _f4(0.00022539384372066706),
    _f4(-5.4799998906673864e-05),
)  # fmt: skip
_ERFC_B_F32 = (
    _f4(1.4604895113734528e-05), _f4(-9.388464968651533e-05), _f4(0.0002877555671148002),
    _f4(-0.0005566896870732307), _f4(0.0007572259055450559), _f4(-0.0007613080670125782),
    _f4(0.0005757473991252482), _f4(-0.0003231322334613651), _f4(0.000124681435409002),
    _f4(-2.162427335861139e-05), _f4(-9.744207090989221e-06), _f4(8.462954610877205e-06),
    _f4(-2.0847387531830464e-06),
)  # fmt: skip
_ERFC_MA_F32, _ERFC_MB_F32, _ERFC_SPLIT_F32 = _f4(1.5), _f4(3.065), _f4(2.2)
# float64: erfc(x) = exp(-x^2) * P(x - m) on [0.8, 2.3] (m = 1.55) and [2.3, 6] (m = 4.15);
# error of erf relative to erf: 2^-58.9 / 2^-63.7
_ERFCX_A_F64 = (
    _f8(0.3135906138333973), _f8(-0.15624826421198096), _f8(0.07140580430482747),
    _f8(-0.03037951169300571), _f8(0.012158780590289136), _f8(-0.004613360711049159),
    _f8(0.0016693571638295242), _f8(-0.0005788163181295437), _f8(0.00019304795481604934),
    _f8(-6.213154465275395e-05), _f8(1.93488932677038e-05), _f8(-5.843784784327943e-06),
    _f8(1.7148748358017023e-06), _f8(-4.901604133317842e-07), _f8(1.370815378629159e-07),
    _f8(-3.682174803635272e-08), _f8(9.231716407467504e-09), _f8(-2.9380056298817513e-09),
    _f8(9.863391567844476e-10),
)  # fmt: skip
_ERFCX_B_F64 = (
    _f8(0.13230441157891445), _f8(-0.030252550990452952), _f8(0.006756324968790285),
    _f8(-0.001475868247708577), _f8(0.00031573586223816047), _f8(-6.622578193722926e-05),
    _f8(1.3632969616971092e-05), _f8(-2.7567619896928946e-06), _f8(5.482038022342282e-07),
    _f8(-1.0706585553514588e-07), _f8(2.0603020979896503e-08), _f8(-4.093136256905909e-09),
    _f8(5.789360549227482e-10), _f8(-1.702931746683919e-10), _f8(6.31214524838373e-11),
    _f8(3.549279853714083e-11), _f8(1.8240542599045104e-11), _f8(3.907960011093929e-12),
    _f8(4.5159838394693867e-13),
)  # fmt: skip
_ERFCX_MA_F64, _ERFCX_MB_F64, _ERFCX_SPLIT_F64 = _f8(1.55), _f8(4.15), _f8(2.3)
# sin(r) = r + r^3 * S(r^2), cos(r) = 1 - r^2/2 + r^4 * C(r^2), |r| <= pi/4 (float64
# coefficients in both cases: float32 trig runs in float64); relative error
# sin 2^-37.5 / 2^-57.1, cos 2^-42.9 / 2^-59.4
_SIN_F32 = (
    _f8(-0.16666666640692854), _f8(0.008333329292702725), _f8(-0.00019839308346444198),
    _f8(2.7180840672253275e-06),
)  # fmt: skip
_COS_F32 = (
    _f8(0.04166666661929984), _f8(-0.0013888883483720873), _f8(2.47994558642284e-05),
    _f8(-2.720540102697514e-07),
)  # fmt: skip
_SIN_F64 = (
    _f8(-0.16666666666666666), _f8(0.008333333333333323), _f8(-0.00019841269841254725),
    _f8(2.755731921402509e-06), _f8(-2.505210487133383e-08), _f8(1.6058361804600955e-10),
    _f8(-7.578471865434397e-13),
)  # fmt: skip
_COS_F64 = (
    _f8(0.041666666666666595), _f8(-0.0013888888888872975), _f8(2.4801587288800055e-05),
    _f8(-2.755731416398401e-07), _f8(2.087569870944561e-09), _f8(-1.1358423560084601e-11),
)  # fmt: skip
# pi/2 split for Cody-Waite reduction (float64 arithmetic)
_TWO_OVER_PI = _f8(0.6366197723675814)
# float32 inputs: 18 + 18 + 18 + 53 bits; k * P1..P3 exact for |k| < 2^35
_PIO2_F32 = (
    _f8(1.5707931518554688), _f8(3.1749368645250797e-06), _f8(2.5633384304057927e-12),
    _f8(5.721188726109832e-18),
)  # fmt: skip
# float64 inputs: 24 + 24 + 24 + 24 + 53 bits; k * P1..P4 exact for |k| < 2^29
_PIO2_F64 = (
    _f8(1.5707963705062866), _f8(-4.371138828673793e-08), _f8(-1.7151245100058819e-15),
    _f8(1.056299898220315e-23), _f8(8.4784276603689e-32),
)  # fmt: skip


@_jit
def _horner(z, c):
    """c[0] + z * (c[1] + z * (...)): unrolled at compile time (c is a constant tuple)."""
    n = len(c)
    p = c[n - 1]
    for i in range(n - 2, -1, -1):
        p = p * z + c[i]
    return p


# ---------------------------------------------------------------------------------------------
# exp


@_jit
def exp_f32(x):
    x = _f4(x)
    xc = _sel(x < _f4(89.0), x, _f4(89.0))  # also NaN -> 89 (fixed up at the end)
    xc = _sel(xc > _f4(-104.0), xc, _f4(-104.0))
    kf = _rint(xc * _LOG2E_F32)
    r = (xc - kf * _LN2HI_F32) - kf * _LN2LO_F32
    y = _ONE_F32 + (r + r * r * _horner(r, _EXP_F32))
    k = np.int32(kf)  # 2^k = 2^k1 * 2^k2: each factor normal, one rounding at the end
    k1 = k >> 1
    k2 = k - k1
    res = (y * _f32_from_bits((k1 + 127) << 23)) * _f32_from_bits((k2 + 127) << 23)
    return _sel(x != x, x, res)


@_jit
def exp_f64(x):
    x = _f8(x)
    xc = _sel(x < _f8(710.0), x, _f8(710.0))
    xc = _sel(xc > _f8(-746.0), xc, _f8(-746.0))
    kf = _rint(xc * _LOG2E_F64)
    r = (xc - kf * _LN2HI_F64) - kf * _LN2LO_F64
    y = _ONE_F64 + (r + r * r * _horner(r, _EXP_F64))
    k = np.int64(kf)
    k1 = k >> 1
    k2 = k - k1
    res = (y * _f64_from_bits((k1 + 1023) << 52)) * _f64_from_bits((k2 + 1023) << 52)
    return _sel(x != x, x, res)


# ---------------------------------------------------------------------------------------------
# expm1: with x = k ln2 + r, expm1(x) = 2^k * (expm1(r) + (1 - 2^-k))


@_jit
def expm1_f32(x):
    x = _f4(x)
    xc = _sel(x < _f4(89.0), x, _f4(89.0))
    xc = _sel(xc > _f4(-30.0), xc, _f4(-30.0))
    kf = _rint(xc * _LOG2E_F32)
    r = (xc - kf * _LN2HI_F32) - kf * _LN2LO_F32
    em = r + r * r * (_HALF_F32 + r * _horner(r, _EXPM1_F32))
    k = np.int32(kf)
    kk = _sel(k < 40, k, np.int32(40))
    t = _ONE_F32 - _f32_from_bits((127 - kk) << 23)  # exact for k <= 24, ~1 beyond
    k1 = k >> 1
    k2 = k - k1
    res = ((em + t) * _f32_from_bits((k1 + 127) << 23)) * _f32_from_bits((k2 + 127) << 23)
    res = _sel(abs(x) < _f4(2.0**-30), x, res)  # keeps -0.0 and subnormals exact
    return _sel(x != x, x, res)


@_jit
def expm1_f64(x):
    x = _f8(x)
    xc = _sel(x < _f8(710.0), x, _f8(710.0))
    xc = _sel(xc > _f8(-60.0), xc, _f8(-60.0))
    kf = _rint(xc * _LOG2E_F64)
    r = (xc - kf * _LN2HI_F64) - kf * _LN2LO_F64
    em = r + r * r * (_HALF_F64 + r * _horner(r, _EXPM1_F64))
    k = np.int64(kf)
    kk = _sel(k < 80, k, np.int64(80))
    t = _ONE_F64 - _f64_from_bits((1023 - kk) << 52)
    k1 = k >> 1
    k2 = k - k1
    res = ((em + t) * _f64_from_bits((k1 + 1023) << 52)) * _f64_from_bits((k2 + 1023) << 52)
    res = _sel(abs(x) < _f8(2.0**-60), x, res)
    return _sel(x != x, x, res)


# ---------------------------------------------------------------------------------------------
# log: x = 2^e * m, m in [sqrt(1/2), sqrt(2)), f = m - 1 (exact), s = f / (2 + f),
# log1p(f) = 2 atanh(s) = f - f^2/2 + s * (f^2/2 + R(s^2)), where R(z) = z * P(z).
# The leading part f - f^2/2 is computed almost exactly; the division only feeds a term that is
# at most ~4% of the result.


@_jit
def _log1p_core_f32(f):
    s = f / (_TWO_F32 + f)
    z = s * s
    hfsq = _HALF_F32 * f * f
    return f - (hfsq - s * (hfsq + z * _horner(z, _LOG_F32)))


@_jit
def _log1p_core_f64(f):
    s = f / (_TWO_F64 + f)
    z = s * s
    hfsq = _HALF_F64 * f * f
    return f - (hfsq - s * (hfsq + z * _horner(z, _LOG_F64)))


@_jit
def log_f32(x):
    x = _f4(x)
    sub = x < _f4(2.0**-126)
    xs = _sel(sub, x * _f4(2.0**23), x)
    ix = _bits(xs) - np.int32(0x3F3504F3)  # bits of sqrt(1/2)
    e = ix >> 23
    m = _f32_from_bits(_bits(xs) - (e << 23))
    ef = _f4(e) - _sel(sub, _f4(23.0), _ZERO_F32)
    lf = _log1p_core_f32(m - _ONE_F32)
    res = ef * _LN2HI_F32 + (lf + ef * _LN2LO_F32)
    res = _sel(x < _INF_F32, res, x)  # +inf and NaN pass through
    res = _sel(x == _ZERO_F32, -_INF_F32, res)
    return _sel(x < _ZERO_F32, _NAN_F32, res)


@_jit
def log_f64(x):
    x = _f8(x)
    sub = x < _f8(2.0**-1022)
    xs = _sel(sub, x * _f8(2.0**52), x)
    ix = _bits(xs) - np.int64(0x3FE6A09E667F3BCD)
    e = ix >> 52
    m = _f64_from_bits(_bits(xs) - (e << 52))
    ef = _f8(e) - _sel(sub, _f8(52.0), _ZERO_F64)
    lf = _log1p_core_f64(m - _ONE_F64)
    res = ef * _LN2HI_F64 + (lf + ef * _LN2LO_F64)
    res = _sel(x < _INF_F64, res, x)
    res = _sel(x == _ZERO_F64, -_INF_F64, res)
    return _sel(x < _ZERO_F64, _NAN_F64, res)


# ---------------------------------------------------------------------------------------------
# log2, log10 (float64): log(m) = hi + lo with hi holding only the leading 21 bits, so hi times
# the leading part of 1/ln2 (1/ln10) is exact; the exponent's part e log10(2) is exact as well.
# The pieces add from small to large, so log2(2^k) = k and log10(10^k) = k exactly and the
# result is within 1 ulp everywhere. float32: computed from the float64 version, rounded once.

_IVLN2HI, _IVLN2LO = _f8(1.4426946640014648), _f8(3.768874985636099e-07)  # 1/ln2
_IVLN10HI, _IVLN10LO = _f8(0.4342944622039795), _f8(1.9699272335463627e-08)  # 1/ln10
_LOG10_2HI, _LOG10_2LO = _f8(0.30102999560767785), _f8(5.630334806675098e-11)  # log10(2)
_LOW32 = np.int64(-(1 << 32))  # clears the low 32 bits


@_jit
def _log_parts_f64(x):
    """(e, hi, lo): x = 2^e m with m in [sqrt(1/2), sqrt(2)), log(m) ~= hi + lo, hi 21 bits."""
    sub = x < _f8(2.0**-1022)
    xs = _sel(sub, x * _f8(2.0**52), x)
    ix = _bits(xs) - np.int64(0x3FE6A09E667F3BCD)
    e = ix >> 52
    m = _f64_from_bits(_bits(xs) - (e << 52))
    ef = _f8(e) - _sel(sub, _f8(52.0), _ZERO_F64)
    f = m - _ONE_F64
    s = f / (_TWO_F64 + f)
    z = s * s
    hfsq = _HALF_F64 * f * f
    r = s * (hfsq + z * _horner(z, _LOG_F64))
    hi = _f64_from_bits(_bits(f - hfsq) & _LOW32)
    lo = ((f - hi) - hfsq) + r
    return ef, hi, lo


@_jit
def _log_special_f64(x, res):
    res = _sel(x < _INF_F64, res, x)  # +inf and NaN pass through
    res = _sel(x == _ZERO_F64, -_INF_F64, res)
    return _sel(x < _ZERO_F64, _NAN_F64, res)


@_jit
def log2_f64(x):
    x = _f8(x)
    ef, hi, lo = _log_parts_f64(x)
    vhi = hi * _IVLN2HI
    vlo = (lo + hi) * _IVLN2LO + lo * _IVLN2HI
    w = ef + vhi
    vlo = vlo + ((ef - w) + vhi)
    return _log_special_f64(x, vlo + w)


@_jit
def log10_f64(x):
    x = _f8(x)
    ef, hi, lo = _log_parts_f64(x)
    vhi = hi * _IVLN10HI
    y2 = ef * _LOG10_2HI
    vlo = ef * _LOG10_2LO + ((lo + hi) * _IVLN10LO + lo * _IVLN10HI)
    w = y2 + vhi
    vlo = vlo + ((y2 - w) + vhi)
    return _log_special_f64(x, vlo + w)


@_jit
def log2_f32(x):
    return _f4(log2_f64(_f8(_f4(x))))


@_jit
def log10_f32(x):
    return _f4(log10_f64(_f8(_f4(x))))


# ---------------------------------------------------------------------------------------------
# exp2: k = rint(x), r = x - k (exact, |r| <= 1/2), 2^r = exp(r ln2). float64: r ln2 as an
# unevaluated sum th + tl (Dekker's product, ln2 in three parts), exp(th + tl) ~= exp(th) +
# tl (1 + th), then scaled by 2^k1 2^k2 as in exp (one rounding for subnormal results).
# float32: the same in float64, rounded once (subnormals and overflow included).

_LN2_A, _LN2_B = _f8(0.6931471675634384), _f8(1.299650687069942e-08)  # ln2 = A + B + C
_LN2_C = _f8(2.3190468138462996e-17)
_LN2_F = _f8(0.6931471805599453)  # A + B rounded


@_jit
def exp2_f64(x):
    x = _f8(x)
    xc = _sel(x < _f8(1025.0), x, _f8(1025.0))
    xc = _sel(xc > _f8(-1080.0), xc, _f8(-1080.0))
    kf = _rint(xc)
    r = xc - kf
    rh = _f64_from_bits(_bits(r) & _SPLIT27)
    rl = r - rh
    th = r * _LN2_F
    tl = (((rh * _LN2_A - th) + rh * _LN2_B) + rl * _LN2_A) + rl * _LN2_B + r * _LN2_C
    y = _ONE_F64 + (th + (th * th * _horner(th, _EXP_F64) + (tl + tl * th)))
    k = np.int64(kf)
    k1 = k >> 1
    k2 = k - k1
    res = (y * _f64_from_bits((k1 + 1023) << 52)) * _f64_from_bits((k2 + 1023) << 52)
    return _sel(x != x, x, res)


@_jit
def exp2_f32(x):
    xd = _f8(_f4(x))
    xc = _sel(xd < _f8(130.0), xd, _f8(130.0))
    xc = _sel(xc > _f8(-152.0), xc, _f8(-152.0))
    kf = _rint(xc)
    t = (xc - kf) * _LN2_F
    y = _ONE_F64 + (t + t * t * _horner(t, _EXP_F64))
    res = _f4(y * _f64_from_bits((np.int64(kf) + 1023) << 52))
    return _sel(xd != xd, _f4(xd), res)


# ---------------------------------------------------------------------------------------------
# log1p: u = 1 + x rounded, c = (1 + x) - u exactly; log1p(x) = log(u) + c/u, with
# u = 2^e m and c/u ~= (c 2^-e) (1 - f + f^2) (c/u is below half an ulp of the result, so a
# rough reciprocal is enough).


@_jit
def log1p_f32(x):
    x = _f4(x)
    u = _ONE_F32 + x
    c = _sel(x > _ONE_F32, _ONE_F32 - (u - x), x - (u - _ONE_F32))
    iu = _bits(u)
    e = (iu - np.int32(0x3F3504F3)) >> 23
    f = _f32_from_bits(iu - (e << 23)) - _ONE_F32
    ec = _sel(e < 100, e, np.int32(100))
    cs = c * _f32_from_bits((127 - ec) << 23)
    ef = _f4(e)
    lf = _log1p_core_f32(f)
    res = ef * _LN2HI_F32 + (lf + (cs * (_ONE_F32 - f + f * f) + ef * _LN2LO_F32))
    res = _sel(x < _INF_F32, res, x)
    res = _sel(abs(x) < _f4(2.0**-30), x, res)
    res = _sel(x == -_ONE_F32, -_INF_F32, res)
    return _sel(x < -_ONE_F32, _NAN_F32, res)


@_jit
def log1p_f64(x):
    x = _f8(x)
    u = _ONE_F64 + x
    c = _sel(x > _ONE_F64, _ONE_F64 - (u - x), x - (u - _ONE_F64))
    iu = _bits(u)
    e = (iu - np.int64(0x3FE6A09E667F3BCD)) >> 52
    f = _f64_from_bits(iu - (e << 52)) - _ONE_F64
    ec = _sel(e < 1000, e, np.int64(1000))
    cs = c * _f64_from_bits((1023 - ec) << 52)
    ef = _f8(e)
    lf = _log1p_core_f64(f)
    res = ef * _LN2HI_F64 + (lf + (cs * (_ONE_F64 - f + f * f) + ef * _LN2LO_F64))
    res = _sel(x < _INF_F64, res, x)
    res = _sel(abs(x) < _f8(2.0**-60), x, res)
    res = _sel(x == -_ONE_F64, -_INF_F64, res)
    return _sel(x < -_ONE_F64, _NAN_F64, res)


# ---------------------------------------------------------------------------------------------
# tanh: odd polynomial for |x| < 0.55, else 1 - 2 / (exp(2|x|) + 1); |x| clamped where tanh
# rounds to 1 anyway.


@_jit
def tanh_f32(x):
    x = _f4(x)
    a = abs(x)
    ac = _sel(a < _f4(10.0), a, _f4(10.0))
    big = _ONE_F32 - _TWO_F32 / (exp_f32(ac + ac) + _ONE_F32)
    z = x * x
    small = x + x * z * _horner(z, _TANH_F32)
    res = _sel(a < _f4(0.55), small, _copysign(big, x))
    res = _sel(x == _ZERO_F32, x, res)  # tanh(-0.0) = -0.0
    return _sel(x != x, x, res)


@_jit
def tanh_f64(x):
    x = _f8(x)
    a = abs(x)
    ac = _sel(a < _f8(20.0), a, _f8(20.0))
    big = _ONE_F64 - _TWO_F64 / (exp_f64(ac + ac) + _ONE_F64)
    z = x * x
    small = x + x * z * _horner(z, _TANH_F64)
    res = _sel(a < _f8(0.55), small, _copysign(big, x))
    res = _sel(x == _ZERO_F64, x, res)  # tanh(-0.0) = -0.0
    return _sel(x != x, x, res)


# ---------------------------------------------------------------------------------------------
# sigmoid = 1 / (1 + exp(-x)) computed from e = exp(-|x|) <= 1, which cannot overflow:
# x >= 0: 1 / (1 + e); x < 0: e / (1 + e) (two divisions: e * (1 / (1 + e)) is 3 ulp off).


@_jit
def sigmoid_f32(x):
    x = _f4(x)
    e = exp_f32(-abs(x))
    d = _ONE_F32 + e
    return _sel(x >= _ZERO_F32, _ONE_F32 / d, e / d)


@_jit
def sigmoid_f64(x):
    x = _f8(x)
    e = exp_f64(-abs(x))
    d = _ONE_F64 + e
    return _sel(x >= _ZERO_F64, _ONE_F64 / d, e / d)


# ---------------------------------------------------------------------------------------------
# softplus = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))


@_jit
def softplus_f32(x):
    x = _f4(x)
    lp = log1p_f32(exp_f32(-abs(x)))
    return _sel(x > _ZERO_F32, x + lp, lp)


@_jit
def softplus_f64(x):
    x = _f8(x)
    lp = log1p_f64(exp_f64(-abs(x)))
    return _sel(x > _ZERO_F64, x + lp, lp)


# ---------------------------------------------------------------------------------------------
# erf


@_jit
def _horner_sel(z, hi, a, b):
    """Horner over coefficients chosen per lane: b[i] where hi else a[i]."""
    n = len(a)
    p = _sel(hi, b[n - 1], a[n - 1])
    for i in range(n - 2, -1, -1):
        p = p * z + _sel(hi, b[i], a[i])
    return p


@_jit
def erf_f32(x):
    x = _f4(x)
    a = abs(x)
    z = x * x
    small = x + x * _horner(z, _ERF_SMALL_F32)
    hi = a >= _ERFC_SPLIT_F32
    t = a - _sel(hi, _ERFC_MB_F32, _ERFC_MA_F32)
    large = _ONE_F32 - _horner_sel(t, hi, _ERFC_A_F32, _ERFC_B_F32)
    large = _sel(a < _f4(3.92), large, _ONE_F32)
    res = _sel(a < _f4(0.8), small, _copysign(large, x))
    return _sel(x != x, x, res)


_SPLIT27 = np.int64(-(1 << 27))  # clears the low 27 mantissa bits


@_jit
def erf_f64(x):
    x = _f8(x)
    a = abs(x)
    z = x * x
    small = x + x * _horner(z, _ERF_SMALL_F64)
    ac = _sel(a < _f8(6.0), a, _f8(6.0))
    hi = ac >= _ERFCX_SPLIT_F64
    t = ac - _sel(hi, _ERFCX_MB_F64, _ERFCX_MA_F64)
    rx = _horner_sel(t, hi, _ERFCX_A_F64, _ERFCX_B_F64)
    # ac^2 = h + l exactly (Dekker): exp(-ac^2) = exp(-h) * (1 - l)
    ah = _f64_from_bits(_bits(ac) & _SPLIT27)
    al = ac - ah
    h = ac * ac
    lo = ((ah * ah - h) + _TWO_F64 * ah * al) + al * al
    erfc = (exp_f64(-h) * (_ONE_F64 - lo)) * rx
    res = _sel(a < _f8(0.8), small, _copysign(_ONE_F64 - erfc, x))
    return _sel(x != x, x, res)


# ---------------------------------------------------------------------------------------------
# sin, cos, tan: x = k pi/2 + r, |r| <= pi/4, Cody-Waite reduction; float32 inputs are reduced
# and evaluated in float64.


@_jit
def _trig_reduce_f32(x):
    """(r, q): x = (k + 4n) pi/2 + r with q = k mod 4, r in float64."""
    xd = _f8(x)
    kf = _rint(xd * _TWO_OVER_PI)
    p = _PIO2_F32
    r = (((xd - kf * p[0]) - kf * p[1]) - kf * p[2]) - kf * p[3]
    r = _sel(kf == _ZERO_F64, xd, r)  # exact, keeps -0.0
    kq = kf - _f8(4.0) * _rint(kf * _f8(0.25))  # k mod 4 in [-2, 2], exact
    return r, np.int64(kq) & 3


@_jit
def _sincos_poly_f32(r):
    z = r * r
    s = r + r * z * _horner(z, _SIN_F32)
    c = _ONE_F64 - _HALF_F64 * z + z * z * _horner(z, _COS_F32)
    return s, c


@_jit
def _huge_f32(x):
    """Lanes the fast reduction cannot do (finite |x| >= TRIG_FAST_LIMIT["f32"])."""
    a = abs(x)
    return (a >= _TRIG_LIMIT_F32) & (a < _INF_F32)


@_jit
def sin_f32(x):
    x = _f4(x)
    r, q = _trig_reduce_f32(x)
    s, c = _sincos_poly_f32(r)
    v = _sel((q & 1) == 0, s, c)
    v = _sel((q & 2) == 0, v, -v)
    v = _sel(x == _ZERO_F32, _f8(x), v)  # keeps -0.0
    res = _sin_if_huge(_huge_f32(x), x, _f4(v))
    return _sel(abs(x) < _INF_F32, res, x - x)


@_jit
def cos_f32(x):
    x = _f4(x)
    r, q = _trig_reduce_f32(x)
    s, c = _sincos_poly_f32(r)
    q = q + 1
    v = _sel((q & 1) == 0, s, c)
    v = _sel((q & 2) == 0, v, -v)
    res = _cos_if_huge(_huge_f32(x), x, _f4(v))
    return _sel(abs(x) < _INF_F32, res, x - x)


@_jit
def tan_f32(x):
    x = _f4(x)
    r, q = _trig_reduce_f32(x)
    s, c = _sincos_poly_f32(r)
    v = _sel((q & 1) == 0, s / c, -c / s)
    v = _sel(x == _ZERO_F32, _f8(x), v)  # keeps -0.0
    res = _tan_if_huge(_huge_f32(x), x, _f4(v))
    return _sel(abs(x) < _INF_F32, res, x - x)


@_jit
def _trig_reduce_f64(x):
    kf = _rint(x * _TWO_OVER_PI)
    p = _PIO2_F64
    r = ((((x - kf * p[0]) - kf * p[1]) - kf * p[2]) - kf * p[3]) - kf * p[4]
    r = _sel(kf == _ZERO_F64, x, r)
    kq = kf - _f8(4.0) * _rint(kf * _f8(0.25))
    return r, np.int64(kq) & 3


@_jit
def _sincos_poly_f64(r):
    z = r * r
    s = r + r * z * _horner(z, _SIN_F64)
    hz = _HALF_F64 * z
    w = _ONE_F64 - hz
    c = w + (((_ONE_F64 - w) - hz) + z * z * _horner(z, _COS_F64))
    return s, c


@_jit
def _huge_f64(x):
    """Lanes the fast reduction cannot do (finite |x| >= TRIG_FAST_LIMIT["f64"])."""
    a = abs(x)
    return (a >= _TRIG_LIMIT_F64) & (a < _INF_F64)


@_jit
def sin_f64(x):
    x = _f8(x)
    r, q = _trig_reduce_f64(x)
    s, c = _sincos_poly_f64(r)
    v = _sel((q & 1) == 0, s, c)
    v = _sel((q & 2) == 0, v, -v)
    v = _sel(x == _ZERO_F64, x, v)  # keeps -0.0
    v = _sin_if_huge(_huge_f64(x), x, v)
    return _sel(abs(x) < _INF_F64, v, x - x)


@_jit
def cos_f64(x):
    x = _f8(x)
    r, q = _trig_reduce_f64(x)
    s, c = _sincos_poly_f64(r)
    q = q + 1
    v = _sel((q & 1) == 0, s, c)
    v = _sel((q & 2) == 0, v, -v)
    v = _cos_if_huge(_huge_f64(x), x, v)
    return _sel(abs(x) < _INF_F64, v, x - x)


@_jit
def tan_f64(x):
    x = _f8(x)
    r, q = _trig_reduce_f64(x)
    s, c = _sincos_poly_f64(r)
    v = _sel((q & 1) == 0, s / c, -c / s)
    v = _sel(x == _ZERO_F64, x, v)  # keeps -0.0
    v = _tan_if_huge(_huge_f64(x), x, v)
    return _sel(abs(x) < _INF_F64, v, x - x)


# ---------------------------------------------------------------------------------------------
# sin, cos, tan of huge arguments: Payne-Hanek reduction, out of line.
#
# The fast functions above reduce with Cody-Waite, exact for |k| < 2^35 (float32 inputs) and
# |k| < 2^29 (float64). Lanes beyond that (rare: |x| >= TRIG_FAST_LIMIT) are redone by a scalar
# function that multiplies the argument's 53-bit mantissa by a 256-bit window of the bits of
# 2/pi, so x (2/pi) mod 4 is known to ~126 bits whatever the exponent. It must not be inlined:
# as a branch inside the inlined code LLVM would if-convert it and run it on every lane. As a
# plain call it would stop the loop from vectorizing. So it is a call LLVM knows a *masked
# vector variant* of (the "vector-function-abi-variant" attribute): the vectorized loop calls
# `graphc_<fn>_huge_<f32|f64>_m<VF>(x, mask)` once per vector, which returns at once when no
# lane is set.


def _two_over_pi_words(nwords: int) -> np.ndarray:
    """Word j (j >= 1) holds bits 64(j-1)+1 .. 64j after the binary point of 2/pi; word 0 is
    the zero bits before it, so a window may start one word early. Computed with Python
    integers: pi from Machin's formula pi/4 = 4 atan(1/5) - atan(1/239), 64 guard bits."""
    prec = 64 * nwords + 64
    one = 1 << prec

    def atan_inv(n: int) -> int:  # atan(1/n) * 2^prec, truncated terms (error < #terms)
        total, power, k, sign = 0, one // n, 1, 1
        while power:
            total += sign * (power // k)
            power //= n * n
            k += 2
            sign = -sign
        return total

    pi = 4 * (4 * atan_inv(5) - atan_inv(239))  # pi * 2^prec, error well below 2^40
    two_over_pi = (2 << (2 * prec)) // pi  # (2/pi) * 2^prec
    frac = two_over_pi >> 64  # 64 * nwords bits after the binary point (guard bits dropped)
    words = [0] + [(frac >> (64 * (nwords - 1 - j))) & (2**64 - 1) for j in range(nwords)]
    return np.array(words, dtype=np.uint64)


# A float64 x = m 2^e has e <= 971; its window starts at word (e - 2) // 64 + 1 <= 16 and is
# four words long.
_TWO_OVER_PI_BITS = _two_over_pi_words(20)
_M32 = np.uint64(0xFFFFFFFF)
_U0, _U1 = np.uint64(0), np.uint64(1)
_SPLIT_F64 = _f8(134217729.0)  # 2^27 + 1, Veltkamp's constant
_PIO2_DD = (_f8(1.5707963267948966), _f8(6.123233995736766e-17))  # pi/2 = HI + LO
# the fast path's reduction is exact below these (|k| = |x| 2/pi + 1/2 < 2^35, 2^29)
TRIG_FAST_LIMIT = {"f32": 1.5 * 2.0**35, "f64": 1.5 * 2.0**29}
_TRIG_LIMIT_F32 = _f4(TRIG_FAST_LIMIT["f32"])
_TRIG_LIMIT_F64 = _f8(TRIG_FAST_LIMIT["f64"])

_jit_outline = njit(cache=True, error_model="numpy", fastmath=False)


@_jit_outline
def _mul_64x64(a, b):
    """(hi, lo): the 128-bit product of two uint64."""
    a0, a1 = a & _M32, a >> np.uint64(32)
    b0, b1 = b & _M32, b >> np.uint64(32)
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> np.uint64(32)) + (p01 & _M32) + (p10 & _M32)
    lo = (p00 & _M32) | (mid << np.uint64(32))
    hi = p11 + (p01 >> np.uint64(32)) + (p10 >> np.uint64(32)) + (mid >> np.uint64(32))
    return hi, lo


@_jit_outline
def _two_prod(a, b):
    """(p, e) with p = fl(a b) and a b = p + e exactly (Dekker; no FMA: fastmath is off)."""
    p = a * b
    ta = _SPLIT_F64 * a
    ah = ta - (ta - a)
    al = a - ah
    tb = _SPLIT_F64 * b
    bh = tb - (tb - b)
    bl = b - bh
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


@_jit_outline
def _reduce_huge(x):
    """(rh, rl, q) with x = (4n + q) pi/2 + rh + rl, |rh + rl| <= pi/4, for finite x with
    |x| >= 2^20 (the exponent window below assumes it)."""
    b = _bits(x)
    e = ((b >> 52) & 0x7FF) - 1075  # x = m 2^e
    m = np.uint64((b & 0xFFFFFFFFFFFFF) | 0x10000000000000)
    # Bits of 2/pi with weight 2^-i contribute m 2^(e-i); those with e - i >= 2 are multiples
    # of 4 (whole turns) and are skipped. The window W = words j0..j0+3 ends sh = 256 - d
    # bits below the binary point of m W, d = e - 64 (j0 - 1) in [2, 65].
    j0 = (e - 2) // 64 + 1
    d = e - 64 * (j0 - 1)
    sh = 256 - d  # in [191, 254]
    _, l0 = _mul_64x64(m, _TWO_OVER_PI_BITS[j0])  # its high word is whole turns
    h1, l1 = _mul_64x64(m, _TWO_OVER_PI_BITS[j0 + 1])
    h2, l2 = _mul_64x64(m, _TWO_OVER_PI_BITS[j0 + 2])
    h3, l3 = _mul_64x64(m, _TWO_OVER_PI_BITS[j0 + 3])
    # 64-bit limbs 1..3 of m W; limb 0 (l3) carries nothing into them, limb 4 is whole turns
    q1 = h3 + l2
    c1 = _sel(q1 < h3, _U1, _U0)
    t = h2 + l1
    c2 = _sel(t < h2, _U1, _U0)
    q2 = t + c1
    c2 = c2 + _sel(q2 < t, _U1, _U0)
    q3 = h1 + l0 + c2
    # the 128 bits from bit s = sh - 126 (in [65, 128]): quadrant in the top 2, then fraction
    s = sh - 126
    sb = np.uint64(s & 63)
    sbc = np.uint64((64 - (s & 63)) & 63)
    lo = _sel(s >= 128, q2, (q1 >> sb) | (q2 << sbc))
    hi = _sel(s >= 128, q3, (q2 >> sb) | (q3 << sbc))
    q = np.int64(hi >> np.uint64(62))
    fh = hi & np.uint64(0x3FFFFFFFFFFFFFFF)  # fraction f = (fh 2^64 + lo) 2^-126 in [0, 1)
    up = (fh >> np.uint64(61)) != _U0  # f >= 1/2: round to the next quadrant, f - 1
    nlo = _U0 - lo
    nfh = (np.uint64(0x3FFFFFFFFFFFFFFF) - fh) + _sel(lo == _U0, _U1, _U0)
    nfh = nfh & np.uint64(0x3FFFFFFFFFFFFFFF)
    fh = _sel(up, nfh, fh)
    lo = _sel(up, nlo, lo)
    q = _sel(up, q + 1, q) & 3
    # |f| as exact pieces c2 2^-31 + c1 2^-73 + c0 2^-126 (31, 42 and 53 bits), then a
    # double-double sum (non-negative pieces: no cancellation)
    c2f = _f8(fh >> np.uint64(31)) * _f8(2.0**-31)
    c1f = _f8(((fh & np.uint64(0x7FFFFFFF)) << np.uint64(11)) | (lo >> np.uint64(53)))
    c1f = c1f * _f8(2.0**-73)
    c0f = _f8(lo & np.uint64(0x1FFFFFFFFFFFFF)) * _f8(2.0**-126)
    sh_ = c2f + c1f
    sl = (c2f - sh_) + c1f  # exact: c2f >= c1f or c2f == 0
    sl = sl + c0f
    fhi = sh_ + sl
    flo = sl - (fhi - sh_)
    # r = f pi/2 in double-double
    p, pe = _two_prod(fhi, _PIO2_DD[0])
    tail = pe + (fhi * _PIO2_DD[1] + flo * _PIO2_DD[0])
    rh = p + tail
    rl = tail - (rh - p)
    # f - 1 was negated above, and sin/cos/tan of -x follow from those of |x|
    neg = up != (x < _ZERO_F64)
    rh = _sel(neg, -rh, rh)
    rl = _sel(neg, -rl, rl)
    q = _sel(x < _ZERO_F64, -q, q) & 3
    return rh, rl, q


@_jit_outline
def _sincos_huge(x):
    """(sin r, cos r, q) for a huge finite x = (4n + q) pi/2 + r: the polynomials at rh,
    corrected to first order for rl."""
    rh, rl, q = _reduce_huge(x)
    s0, c0 = _sincos_poly_f64(rh)
    s = s0 + rl * c0
    c = c0 - rl * s0
    return s, c, q


@_jit_outline
def _sin_huge(x):
    s, c, q = _sincos_huge(x)
    v = s if (q & 1) == 0 else c
    return v if (q & 2) == 0 else -v


@_jit_outline
def _cos_huge(x):
    s, c, q = _sincos_huge(x)
    q = q + 1
    v = s if (q & 1) == 0 else c
    return v if (q & 2) == 0 else -v


@_jit_outline
def _tan_huge(x):
    s, c, q = _sincos_huge(x)
    return s / c if (q & 1) == 0 else -c / s


# Masked vector variants are provided for these vector widths (the loop vectorizer picks one
# of them; a width without a variant would leave the call, and so the loop, scalar).
_HUGE_VFS = (2, 4, 8, 16, 32)
_HUGE_IMPL = {"sin": _sin_huge, "cos": _cos_huge, "tan": _tan_huge}


def _huge_function(context, builder, fn: str, fty: ir.Type) -> ir.Function:
    """The module's `T graphc_<fn>_huge_<t>(T)` for T = float or double: a plain-ABI wrapper of
    the Numba function `_<fn>_huge` (float64; float32 arguments widen exactly and the result
    rounds once), with its masked vector variants, defined on first use in a module. float32
    loops get variants of float vectors: half the width of double ones, so LLVM's cost model
    still finds a loop computing both sin and cos worth vectorizing."""
    module = builder.module
    name = f"graphc_{fn}_huge_{'f32' if fty == ir.FloatType() else 'f64'}"
    found = module.globals.get(name)
    if found is not None:
        return found
    dbl, i32 = ir.DoubleType(), ir.IntType(32)
    sig = types.float64(types.float64)
    disp = _HUGE_IMPL[fn]
    disp.compile(sig.args)
    cres = disp.overloads[sig.args]
    context.add_linking_libs([cres.library])
    scalar = ir.Function(module, ir.FunctionType(fty, [fty]), name)
    scalar.linkage = "linkonce_odr"
    for attr in ("noinline", "nounwind", "readnone"):
        scalar.attributes.add(attr)
    variants = ",".join(f"_ZGV_LLVM_M{vf}v_{name}({name}_m{vf})" for vf in _HUGE_VFS)
    # llvmlite knows only keyword attributes; this string attribute is written out as given
    set.add(scalar.attributes, f'"vector-function-abi-variant"="{variants}"')
    b = ir.IRBuilder(scalar.append_basic_block())
    arg = scalar.args[0] if fty == dbl else b.fpext(scalar.args[0], dbl)
    _, res = context.call_internal_no_propagate(b, cres.fndesc, sig, [arg])
    b.ret(res if fty == dbl else b.fptrunc(res, fty))
    i64 = ir.IntType(64)
    cttz = cgutils.get_or_insert_function(
        module, ir.FunctionType(i64, [i64, ir.IntType(1)]), "llvm.cttz.i64"
    )
    for vf in _HUGE_VFS:
        vty, mty = ir.VectorType(fty, vf), ir.VectorType(ir.IntType(1), vf)
        fnty = ir.FunctionType(vty, [vty, mty])
        # the lanes: one scalar call per set lane, lowest set bit first
        lanes = ir.Function(module, fnty, f"{name}_lanes{vf}")
        vec = ir.Function(module, fnty, f"{name}_m{vf}")
        for f in (lanes, vec):
            f.linkage = "weak_odr"  # linkonce would be dropped before the vectorizer looks
            for attr in ("noinline", "nounwind", "readnone"):
                f.attributes.add(attr)
        lanes.attributes.add("cold")
        xv, mask = lanes.args
        b = ir.IRBuilder(lanes.append_basic_block())
        head = b.block
        bits = b.zext(b.bitcast(mask, ir.IntType(vf)), i64)
        loop = b.append_basic_block("lane")
        b.branch(loop)
        b.position_at_end(loop)
        left = b.phi(i64)
        acc = b.phi(vty)
        j = b.trunc(b.call(cttz, [left, ir.Constant(ir.IntType(1), 0)]), i32)
        acc2 = b.insert_element(acc, b.call(scalar, [b.extract_element(xv, j)]), j)
        left2 = b.and_(left, b.sub(left, ir.Constant(i64, 1)))
        left.add_incoming(bits, head)
        left.add_incoming(left2, loop)
        acc.add_incoming(xv, head)
        acc.add_incoming(acc2, loop)
        done = b.append_basic_block("done")
        b.cbranch(b.icmp_unsigned("!=", left2, ir.Constant(i64, 0)), loop, done)
        b.position_at_end(done)
        b.ret(acc2)
        # the variant the loop calls once per vector: returns at once when no lane is set. (C
        # convention: with preserve_allcc, which would spare the loop's vector registers, set
        # lanes came back unchanged in a test on x86-64 with AVX-512.)
        xv, mask = vec.args
        b = ir.IRBuilder(vec.append_basic_block())
        bits = b.bitcast(mask, ir.IntType(vf))
        with b.if_then(b.icmp_unsigned("!=", bits, ir.Constant(ir.IntType(vf), 0)), likely=False):
            b.ret(b.call(lanes, [xv, mask]))
        b.ret(xv)  # no lane set: the caller keeps its fast results
    return scalar


def _huge_intrinsic(fn: str):
    def typer(typingctx, cond, x, fast):
        if cond != types.boolean or x not in (types.float32, types.float64) or fast != x:
            return None

        def codegen(context, builder, sig, args):
            huge, xv, fastv = args
            before = builder.block
            with builder.if_then(huge, likely=False):
                slow = builder.call(_huge_function(context, builder, fn, xv.type), [xv])
                slow_end = builder.block
            res = builder.phi(xv.type)
            res.add_incoming(slow, slow_end)
            res.add_incoming(fastv, before)
            return res

        return x(cond, x, fast), codegen

    return typer


@intrinsic
def _sin_if_huge(typingctx, cond, x, fast):
    """`_sin_huge(x) if cond else fast`, the call kept out of line (see above)."""
    return _huge_intrinsic("sin")(typingctx, cond, x, fast)


@intrinsic
def _cos_if_huge(typingctx, cond, x, fast):
    """`_cos_huge(x) if cond else fast`."""
    return _huge_intrinsic("cos")(typingctx, cond, x, fast)


@intrinsic
def _tan_if_huge(typingctx, cond, x, fast):
    """`_tan_huge(x) if cond else fast`."""
    return _huge_intrinsic("tan")(typingctx, cond, x, fast)


# ---------------------------------------------------------------------------------------------
# inverse trigonometric and hyperbolic functions. float64 evaluation throughout: the float32
# versions convert to float64, compute there and round once (half the vector width, but a
# correctly rounded result in almost all cases, and no float32 overflow in intermediate terms).

# atan(r) = r + r * z * P(z) / Q(z), z = r^2, |r| <= 0.66 (Cephes atan, Q monic, relative error
# 1.8e-16 over [-10, 10] with the reduction below)
_ATAN_P = (
    _f8(-6.485021904942025371773e01), _f8(-1.228866684490136173410e02),
    _f8(-7.500855792314704667340e01), _f8(-1.615753718733365076637e01),
    _f8(-8.750608600031904122785e-01),
)  # fmt: skip
_ATAN_Q = (
    _f8(1.945506571482613964425e02), _f8(4.853903996359136964868e02),
    _f8(4.328810604912902668951e02), _f8(1.650270098316988542046e02),
    _f8(2.485846490142306297962e01), _f8(1.0),
)  # fmt: skip
_PIO2_HI, _PIO2_LO = _f8(1.5707963267948966), _f8(6.123233995736766e-17)  # pi/2 = HI + LO
_PIO4_HI, _PIO4_LO = _f8(0.7853981633974483), _f8(3.061616997868383e-17)
_PI_HI, _PI_LO = _f8(3.141592653589793), _f8(1.2246467991473532e-16)
_TAN3PIO8 = _f8(2.414213562373095)
_LN2_F64 = _f8(0.6931471805599453)


@_jit
def _atan_pos(a):
    """atan(a) for a >= 0 (or NaN), float64: a > tan(3pi/8): pi/2 - atan(1/a); a > 0.66:
    pi/4 + atan((a-1)/(a+1)); else the rational approximation directly."""
    big = a > _TAN3PIO8
    mid = a > _f8(0.66)
    r = _sel(big, -_ONE_F64 / a, _sel(mid, (a - _ONE_F64) / (a + _ONE_F64), a))
    z = r * r
    p = r + r * (z * _horner(z, _ATAN_P) / _horner(z, _ATAN_Q))
    base = _sel(big, _PIO2_HI, _sel(mid, _PIO4_HI, _ZERO_F64))
    lo = _sel(big, _PIO2_LO, _sel(mid, _PIO4_LO, _ZERO_F64))
    return base + (p + lo)


@_jit
def _atan_d(x):
    return _copysign(_atan_pos(abs(x)), x)


@_jit
def atan_f32(x):
    return _f4(_atan_d(_f8(_f4(x))))


@_jit
def atan_f64(x):
    return _atan_d(_f8(x))


@_jit
def _atan2_d(y, x):
    """atan2 in float64 with C99's special values: the angle of (x, y) in [-pi, pi], the sign
    of y kept (also for zeros), x = -0.0 counted as negative."""
    ax, ay = abs(x), abs(y)
    swap = ay > ax
    num = _sel(swap, ax, ay)
    den = _sel(swap, ay, ax)
    q = num / den
    q = _sel(den == _ZERO_F64, _ZERO_F64, q)  # both zero
    q = _sel(num == _INF_F64, _ONE_F64, q)  # both infinite
    r = _atan_pos(q)
    r = _sel(swap, (_PIO2_HI - r) + _PIO2_LO, r)
    r = _sel(_bits(x) < 0, (_PI_HI - r) + _PI_LO, r)
    res = _copysign(r, y)
    return _sel((x != x) | (y != y), x + y, res)


@_jit
def atan2_f32(y, x):
    return _f4(_atan2_d(_f8(_f4(y)), _f8(_f4(x))))


@_jit
def atan2_f64(y, x):
    return _atan2_d(_f8(y), _f8(x))


@_jit
def _asin_d(x):
    # asin(x) = atan(x / sqrt((1 - x)(1 + x))); |x| = 1 gives x / 0 = +-inf -> +-pi/2, |x| > 1 a
    # negative square root -> NaN
    return _atan_d(x / np.sqrt((_ONE_F64 - x) * (_ONE_F64 + x)))


@_jit
def asin_f32(x):
    return _f4(_asin_d(_f8(_f4(x))))


@_jit
def asin_f64(x):
    return _asin_d(_f8(x))


@_jit
def _acos_d(x):
    # acos(x) = 2 atan(sqrt((1 - x) / (1 + x))); x = -1 gives 2 atan(inf) = pi
    return _TWO_F64 * _atan_pos(np.sqrt((_ONE_F64 - x) / (_ONE_F64 + x)))


@_jit
def acos_f32(x):
    return _f4(_acos_d(_f8(_f4(x))))


@_jit
def acos_f64(x):
    return _acos_d(_f8(x))


@_jit
def _sinh_d(x):
    """sinh from e = expm1(|x|): (e + e / (e + 1)) / 2 (accurate near 0); past 709, where
    expm1 overflows but sinh does not yet, (exp(|x|/2) / 2) * exp(|x|/2)."""
    a = abs(x)
    ac = _sel(a < _f8(709.0), a, _f8(709.0))
    e = expm1_f64(ac)
    small = _HALF_F64 * (e + e / (e + _ONE_F64))
    h = exp_f64(_HALF_F64 * a)
    res = _sel(a < _f8(709.0), small, (_HALF_F64 * h) * h)
    res = _copysign(res, x)
    return _sel(x != x, x, res)


@_jit
def _cosh_d(x):
    """cosh = (E + 1/E) / 2 with E = exp(|x|); past 709 (exp overflows before cosh does:
    710.4758600739439 in float64) (exp(|x|/2) / 2) * exp(|x|/2)."""
    a = abs(x)
    ac = _sel(a < _f8(709.0), a, _f8(709.0))
    big_e = exp_f64(ac)
    small = _HALF_F64 * big_e + _HALF_F64 / big_e
    h = exp_f64(_HALF_F64 * a)
    res = _sel(a < _f8(709.0), small, (_HALF_F64 * h) * h)
    return _sel(x != x, x, res)


@_jit
def sinh_f32(x):
    # sinh overflows float32 past 89.4159: clamping |x| to 100 keeps the float64 computation
    # finite (inf included) and the final rounding gives the float32 overflow
    xd = _f8(_f4(x))
    xc = _sel(abs(xd) < _f8(100.0), xd, _copysign(_f8(100.0), xd))
    return _f4(_sinh_d(_sel(xd != xd, xd, xc)))


@_jit
def sinh_f64(x):
    return _sinh_d(_f8(x))


@_jit
def cosh_f32(x):
    xd = _f8(_f4(x))
    xc = _sel(abs(xd) < _f8(100.0), xd, _f8(100.0))
    return _f4(_cosh_d(_sel(xd != xd, xd, xc)))


@_jit
def cosh_f64(x):
    return _cosh_d(_f8(x))


@_jit
def _asinh_d(x, big):
    """asinh(|x|) = log1p(a + a^2 / (1 + sqrt(1 + a^2))), or log(a) + ln2 for a > big (where
    a^2 could overflow and 1 / (4 a^2) is negligible); sign restored."""
    a = abs(x)
    ab = _sel(a > big, _ONE_F64, a)
    s = ab * ab
    small = log1p_f64(ab + s / (_ONE_F64 + np.sqrt(_ONE_F64 + s)))
    large = log_f64(a) + _LN2_F64
    res = _copysign(_sel(a > big, large, small), x)
    return _sel(x != x, x, res)


@_jit
def asinh_f32(x):
    return _f4(_asinh_d(_f8(_f4(x)), _f8(1e300)))  # float32 a^2 never overflows in float64


@_jit
def asinh_f64(x):
    return _asinh_d(_f8(x), _f8(2.0**28))


@_jit
def _acosh_d(x, big):
    """acosh(x) = log1p(t + sqrt(2t + t^2)) with t = x - 1 (exact near 1), or log(x) + ln2 for
    x > big; NaN for x < 1."""
    xb = _sel(x > big, _TWO_F64, x)
    t = xb - _ONE_F64
    small = log1p_f64(t + np.sqrt(_TWO_F64 * t + t * t))
    large = log_f64(x) + _LN2_F64
    res = _sel(x > big, large, small)
    res = _sel(x < _ONE_F64, _NAN_F64, res)
    return _sel(x != x, x, res)


@_jit
def acosh_f32(x):
    return _f4(_acosh_d(_f8(_f4(x)), _f8(1e300)))


@_jit
def acosh_f64(x):
    return _acosh_d(_f8(x), _f8(2.0**28))


@_jit
def _atanh_d(x):
    """atanh(|x|) = log1p(2a + 2a^2 / (1 - a)) / 2 for a < 0.5, log1p(2a / (1 - a)) / 2 beyond
    (1 - a exact there); a = 1 gives log1p(inf) = inf, a > 1 log1p(< -1) = NaN."""
    a = abs(x)
    om = _ONE_F64 - a
    u = _sel(a < _HALF_F64, (a + a) + (a + a) * a / om, (a + a) / om)
    res = _copysign(_HALF_F64 * log1p_f64(u), x)
    return _sel(x != x, x, res)


@_jit
def atanh_f32(x):
    return _f4(_atanh_d(_f8(_f4(x))))


@_jit
def atanh_f64(x):
    return _atanh_d(_f8(x))


@_jit
def _hypot_d(x, y):
    """sqrt(x^2 + y^2) with both scaled by a power of two near max(|x|, |y|) (exact), so
    nothing overflows or underflows before the result does; inf wins over NaN (C99)."""
    ax, ay = abs(x), abs(y)
    m = _sel(ax > ay, ax, ay)
    k = (_bits(m) >> 52) - 1023
    k = _sel(k > 1022, np.int64(1022), _sel(k < -1022, np.int64(-1022), k))
    down = _f64_from_bits((1023 - k) << 52)
    up = _f64_from_bits((1023 + k) << 52)
    xs, ys = ax * down, ay * down
    res = np.sqrt(xs * xs + ys * ys) * up
    res = _sel((ax != ax) | (ay != ay), x + y, res)
    return _sel((ax == _INF_F64) | (ay == _INF_F64), _INF_F64, res)


@_jit
def hypot_f32(x, y):
    # float32 values squared and summed in float64 cannot overflow or lose bits that matter
    xd, yd = _f8(_f4(x)), _f8(_f4(y))
    res = _f4(np.sqrt(xd * xd + yd * yd))
    res = _sel((xd != xd) | (yd != yd), _f4(xd + yd), res)
    return _sel((abs(xd) == _INF_F64) | (abs(yd) == _INF_F64), _INF_F32, res)


@_jit
def hypot_f64(x, y):
    return _hypot_d(_f8(x), _f8(y))


# ---------------------------------------------------------------------------------------------
# floor_divide: NumPy's (and Python's) float floor division, which is not floor(a / b): it is
# derived from the exact remainder fmod(a, b), so 1 // 0.1 is 9.0 (floor(1 / 0.1) = 10.0).
# The steps and roundings of NumPy's npy_divmod, in the working precision.


@_jit
def _floor_divide(a, b, zero, one, half):
    mod = np.fmod(a, b)
    div = (a - mod) / b
    div = _sel((mod != zero) & ((b < zero) != (mod < zero)), div - one, div)
    fl = np.floor(div)
    fl = _sel(div - fl > half, fl + one, fl)
    fl = _sel(div == zero, _copysign(zero, a / b), fl)
    return _sel(b == zero, a / b, fl)


@_jit
def floor_divide_f32(a, b):
    return _floor_divide(_f4(a), _f4(b), _ZERO_F32, _ONE_F32, _HALF_F32)


@_jit
def floor_divide_f64(a, b):
    return _floor_divide(_f8(a), _f8(b), _ZERO_F64, _ONE_F64, _HALF_F64)


# ---------------------------------------------------------------------------------------------
# cbrt (float64; float32 computed in float64 and rounded once): |x| = 2^(3q + j) m scaled into
# the normal range, a first guess from the exponent bits divided by 3, then Newton steps
# y <- y - (y^3 - a) / (3 y^2) (quadratic convergence: four steps take 5 correct bits past
# 53). Signs, zeros, infinities and NaN pass through as NumPy's cbrt gives them.

_CBRT_MAGIC = np.int64(0x2A9F7893782DA1CE)  # ~ (1023 - 1023/3) << 52, a fit of cbrt's bits
_THIRD = _f8(1.0 / 3.0)


@_jit
def _cbrt_d(x):
    a = abs(x)
    # exact scalings by 2^(+-60) keep y^3 finite and normal (cbrt scales by 2^(-+20))
    sub = a < _f8(2.0**-1000)
    big = a > _f8(2.0**1000)
    a2 = _sel(sub, a * _f8(2.0**60), _sel(big, a * _f8(2.0**-60), a))
    y = _f64_from_bits(_bits(a2) // np.int64(3) + _CBRT_MAGIC)
    for _ in range(4):
        y = y - (y * y * y - a2) / (_f8(3.0) * y * y)
    y = _sel(sub, y * _f8(2.0**-20), _sel(big, y * _f8(2.0**20), y))
    res = _copysign(y, x)
    return _sel((x == _ZERO_F64) | (a == _INF_F64) | (x != x), x, res)


@_jit
def cbrt_f32(x):
    return _f4(_cbrt_d(_f8(_f4(x))))


@_jit
def cbrt_f64(x):
    return _cbrt_d(_f8(x))


# ---------------------------------------------------------------------------------------------
# remainder: NumPy's x % y (npy_remainder): fmod, moved into y's sign; a zero result takes the
# sign of y (so 1.0 % -1.0 is -0.0), y == 0 gives fmod's NaN.


@_jit
def _remainder(a, b, zero):
    mod = np.fmod(a, b)
    mod = _sel((mod != zero) & ((b < zero) != (mod < zero)), mod + b, mod)
    mod = _sel(mod == zero, _copysign(zero, b), mod)
    return _sel(b == zero, np.fmod(a, b), mod)


@_jit
def remainder_f32(a, b):
    return _remainder(_f4(a), _f4(b), _ZERO_F32)


@_jit
def remainder_f64(a, b):
    return _remainder(_f8(a), _f8(b), _ZERO_F64)


# ---------------------------------------------------------------------------------------------
# lookup for the code generator

OPS = (
    "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "tanh", "sigmoid", "softplus", "erf",
    "sin", "cos", "tan", "cbrt", "sinh", "cosh", "asin", "acos", "atan", "asinh", "acosh", "atanh",
)  # fmt: skip
BINARY_OPS = ("atan2", "hypot", "floor_divide", "remainder")  # two arguments (y, x for atan2)
DTYPES = ("f32", "f64")


def source_name(op: str, dtype: str) -> str:
    """The name to import from graphc.codegen.mathlib for (op, dtype), e.g. "exp_f32"."""
    if op not in OPS + BINARY_OPS or dtype not in DTYPES:
        raise KeyError(f"mathlib has no {op} for {dtype}")
    return f"{op}_{dtype}"


FUNCS: dict[tuple[str, str], object] = {
    (op, dt): globals()[f"{op}_{dt}"] for op in OPS + BINARY_OPS for dt in DTYPES
}
