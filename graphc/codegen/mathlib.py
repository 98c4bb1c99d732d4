"""Vectorizable scalar math functions for generated Numba kernels.

PLACEHOLDER DOCSTRING (filled in below once measured).
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

f4 = np.float32
f8 = np.float64

_ZERO_F32, _HALF_F32, _ONE_F32, _TWO_F32 = f4(0.0), f4(0.5), f4(1.0), f4(2.0)
_ZERO_F64, _HALF_F64, _ONE_F64, _TWO_F64 = f8(0.0), f8(0.5), f8(1.0), f8(2.0)
_INF_F32, _NAN_F32 = f4(np.inf), f4(np.nan)
_INF_F64, _NAN_F64 = f8(np.inf), f8(np.nan)

# ln2 = HI + LO, HI with few significant bits so k * HI is exact for every k that occurs
_LN2HI_F32 = f4(0.693145751953125)  # 16 bits
_LN2LO_F32 = f4(1.428606765330187e-06)
_LN2HI_F64 = f8(0.6931471805598903)  # 42 bits
_LN2LO_F64 = f8(5.497923018708371e-14)
_LOG2E_F32 = f4(1.4426950408889634)
_LOG2E_F64 = f8(1.4426950408889634)

# Polynomial coefficients: minimax fits (Remez exchange, weighted as noted, 60-digit mpmath
# arithmetic, then rounded to the working precision). Max weighted error in the comment.

# exp(r) = 1 + r + r^2 * P(r), |r| <= 0.347; relative error 2^-28.2 / 2^-56.6
_EXP_F32 = (
    f4(0.4999999403953552), f4(0.16666515171527863), f4(0.041668083518743515),
    f4(0.00836934894323349), f4(0.0013840398751199245),
)  # fmt: skip
_EXP_F64 = (
    f8(0.5000000000000011), f8(0.1666666666666641), f8(0.04166666666652894),
    f8(0.008333333333495927), f8(0.0013888888943997717), f8(0.00019841269504288454),
    f8(2.4801492676618075e-05), f8(2.7557587600833005e-06), f8(2.7630411978976e-07),
    f8(2.4999937396938468e-08),
)  # fmt: skip
# expm1(r) = r + r^2/2 + r^3 * P(r), |r| <= 0.347; relative error 2^-31.0 / 2^-59.1
_EXPM1_F32 = (
    f4(0.1666666567325592), f4(0.04166646674275398), f4(0.008333643898367882),
    f4(0.001393504673615098), f4(0.0001966348645510152),
)  # fmt: skip
_EXPM1_F64 = (
    f8(0.16666666666666677), f8(0.041666666666666574), f8(0.008333333333322058),
    f8(0.0013888888888943154), f8(0.00019841269885240392), f8(2.4801587197518476e-05),
    f8(2.7557244958158047e-06), f8(2.7557387352096517e-07), f8(2.5108814988016294e-08),
    f8(2.087891666520331e-09),
)  # fmt: skip
# 2*atanh(s) = 2s + s * z * P(z), z = s^2 <= 0.02950 (|s| <= (sqrt2-1)/(sqrt2+1));
# absolute error 2^-29.2 / 2^-58.1
_LOG_F32 = (f4(0.6666677594184875), f4(0.39977553486824036), f4(0.2987212836742401))
_LOG_F64 = (
    f8(0.6666666666666735), f8(0.3999999999940749), f8(0.2857142874414179),
    f8(0.22222198378445793), f8(0.18183575166678856), f8(0.15313755739331783),
    f8(0.14799066217146087),
)  # fmt: skip
# tanh(x) = x + x^3 * P(x^2), |x| <= 0.55; relative error 2^-29.7 / 2^-59.5
_TANH_F32 = (
    f4(-0.33333316445350647), f4(0.13332544267177582), f4(-0.0538475476205349),
    f4(0.02105071395635605), f4(-0.00624284939840436),
)  # fmt: skip
_TANH_F64 = (
    f8(-0.333333333333333), f8(0.13333333333326597), f8(-0.053968253963746965),
    f8(0.021869488385454144), f8(-0.008863232594674577), f8(0.003592091960201875),
    f8(-0.0014555423813531949), f8(0.0005884425254999578), f8(-0.0002333764493833042),
    f8(8.33089332752211e-05), f8(-1.948993716433778e-05),
)  # fmt: skip
# erf(x) = x + x * P(x^2), |x| <= 0.8; relative error 2^-28.1 / 2^-55.3
_ERF_SMALL_F32 = (
    f4(0.12837916612625122), f4(-0.37612608075141907), f4(0.11283162236213684),
    f4(-0.026822242885828018), f4(0.005086865741759539), f4(-0.000654224946629256),
)  # fmt: skip
_ERF_SMALL_F64 = (
    f8(0.12837916709551256), f8(-0.3761263890318362), f8(0.11283791670946879),
    f8(-0.02686617064313603), f8(0.005223977600628631), f8(-0.0008548325218770894),
    f8(0.0001205525092285904), f8(-1.4923245005309803e-05), f8(1.6416551917580922e-06),
    f8(-1.5823960022489352e-07), f8(1.1067437932664702e-08),
)  # fmt: skip
# float32: erfc(x) = P(x - m) on [0.8, 2.2] (m = 1.5) and [2.2, 3.93] (m = 3.065);
# absolute error 2^-28.3 / 2^-35.8
_ERFC_A_F32 = (
    f4(0.0338948518037796), f4(-0.11893028765916824), f4(0.17839543521404266),
    f4(-0.1387520432472229), f4(0.04459895193576813), f4(0.014867027290165424),
    f4(-0.01932721771299839), f4(0.00473783677443862), f4(0.00236831814981997),
    f4(-0.0016920177731662989), f4(7.700802234467119e-05), f4(0.00022539384372066706),
    f4(-5.4799998906673864e-05),
)  # fmt: skip
_ERFC_B_F32 = (
    f4(1.4604895113734528e-05), f4(-9.388464968651533e-05), f4(0.0002877555671148002),
    f4(-0.0005566896870732307), f4(0.0007572259055450559), f4(-0.0007613080670125782),
    f4(0.0005757473991252482), f4(-0.0003231322334613651), f4(0.000124681435409002),
    f4(-2.162427335861139e-05), f4(-9.744207090989221e-06), f4(8.462954610877205e-06),
    f4(-2.0847387531830464e-06),
)  # fmt: skip
_ERFC_MA_F32, _ERFC_MB_F32, _ERFC_SPLIT_F32 = f4(1.5), f4(3.065), f4(2.2)
# float64: erfc(x) = exp(-x^2) * P(x - m) on [0.8, 2.3] (m = 1.55) and [2.3, 6] (m = 4.15);
# error of erf relative to erf: 2^-58.9 / 2^-63.7
_ERFCX_A_F64 = (
    f8(0.3135906138333973), f8(-0.15624826421198096), f8(0.07140580430482747),
    f8(-0.03037951169300571), f8(0.012158780590289136), f8(-0.004613360711049159),
    f8(0.0016693571638295242), f8(-0.0005788163181295437), f8(0.00019304795481604934),
    f8(-6.213154465275395e-05), f8(1.93488932677038e-05), f8(-5.843784784327943e-06),
    f8(1.7148748358017023e-06), f8(-4.901604133317842e-07), f8(1.370815378629159e-07),
    f8(-3.682174803635272e-08), f8(9.231716407467504e-09), f8(-2.9380056298817513e-09),
    f8(9.863391567844476e-10),
)  # fmt: skip
_ERFCX_B_F64 = (
    f8(0.13230441157891445), f8(-0.030252550990452952), f8(0.006756324968790285),
    f8(-0.001475868247708577), f8(0.00031573586223816047), f8(-6.622578193722926e-05),
    f8(1.3632969616971092e-05), f8(-2.7567619896928946e-06), f8(5.482038022342282e-07),
    f8(-1.0706585553514588e-07), f8(2.0603020979896503e-08), f8(-4.093136256905909e-09),
    f8(5.789360549227482e-10), f8(-1.702931746683919e-10), f8(6.31214524838373e-11),
    f8(3.549279853714083e-11), f8(1.8240542599045104e-11), f8(3.907960011093929e-12),
    f8(4.5159838394693867e-13),
)  # fmt: skip
_ERFCX_MA_F64, _ERFCX_MB_F64, _ERFCX_SPLIT_F64 = f8(1.55), f8(4.15), f8(2.3)
# sin(r) = r + r^3 * S(r^2), cos(r) = 1 - r^2/2 + r^4 * C(r^2), |r| <= pi/4 (float64
# coefficients in both cases: float32 trig runs in float64); relative error
# sin 2^-37.5 / 2^-57.1, cos 2^-42.9 / 2^-59.4
_SIN_F32 = (
    f8(-0.16666666640692854), f8(0.008333329292702725), f8(-0.00019839308346444198),
    f8(2.7180840672253275e-06),
)  # fmt: skip
_COS_F32 = (
    f8(0.04166666661929984), f8(-0.0013888883483720873), f8(2.47994558642284e-05),
    f8(-2.720540102697514e-07),
)  # fmt: skip
_SIN_F64 = (
    f8(-0.16666666666666666), f8(0.008333333333333323), f8(-0.00019841269841254725),
    f8(2.755731921402509e-06), f8(-2.505210487133383e-08), f8(1.6058361804600955e-10),
    f8(-7.578471865434397e-13),
)  # fmt: skip
_COS_F64 = (
    f8(0.041666666666666595), f8(-0.0013888888888872975), f8(2.4801587288800055e-05),
    f8(-2.755731416398401e-07), f8(2.087569870944561e-09), f8(-1.1358423560084601e-11),
)  # fmt: skip
# pi/2 split for Cody-Waite reduction (float64 arithmetic)
_TWO_OVER_PI = f8(0.6366197723675814)
# float32 inputs: 18 + 18 + 18 + 53 bits; k * P1..P3 exact for |k| < 2^35
_PIO2_F32 = (
    f8(1.5707931518554688), f8(3.1749368645250797e-06), f8(2.5633384304057927e-12),
    f8(5.721188726109832e-18),
)  # fmt: skip
# float64 inputs: 24 + 24 + 24 + 24 + 53 bits; k * P1..P4 exact for |k| < 2^29
_PIO2_F64 = (
    f8(1.5707963705062866), f8(-4.371138828673793e-08), f8(-1.7151245100058819e-15),
    f8(1.056299898220315e-23), f8(8.4784276603689e-32),
)  # fmt: skip
_R_MAX = f8(1.0)  # |r| bound past the accurate range (keeps results in [-1, 1])


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
    x = f4(x)
    xc = _sel(x < f4(89.0), x, f4(89.0))  # also NaN -> 89 (fixed up at the end)
    xc = _sel(xc > f4(-104.0), xc, f4(-104.0))
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
    x = f8(x)
    xc = _sel(x < f8(710.0), x, f8(710.0))
    xc = _sel(xc > f8(-746.0), xc, f8(-746.0))
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
    x = f4(x)
    xc = _sel(x < f4(89.0), x, f4(89.0))
    xc = _sel(xc > f4(-30.0), xc, f4(-30.0))
    kf = _rint(xc * _LOG2E_F32)
    r = (xc - kf * _LN2HI_F32) - kf * _LN2LO_F32
    em = r + r * r * (_HALF_F32 + r * _horner(r, _EXPM1_F32))
    k = np.int32(kf)
    kk = _sel(k < 40, k, np.int32(40))
    t = _ONE_F32 - _f32_from_bits((127 - kk) << 23)  # exact for k <= 24, ~1 beyond
    k1 = k >> 1
    k2 = k - k1
    res = ((em + t) * _f32_from_bits((k1 + 127) << 23)) * _f32_from_bits((k2 + 127) << 23)
    res = _sel(abs(x) < f4(2.0**-30), x, res)  # keeps -0.0 and subnormals exact
    return _sel(x != x, x, res)


@_jit
def expm1_f64(x):
    x = f8(x)
    xc = _sel(x < f8(710.0), x, f8(710.0))
    xc = _sel(xc > f8(-60.0), xc, f8(-60.0))
    kf = _rint(xc * _LOG2E_F64)
    r = (xc - kf * _LN2HI_F64) - kf * _LN2LO_F64
    em = r + r * r * (_HALF_F64 + r * _horner(r, _EXPM1_F64))
    k = np.int64(kf)
    kk = _sel(k < 80, k, np.int64(80))
    t = _ONE_F64 - _f64_from_bits((1023 - kk) << 52)
    k1 = k >> 1
    k2 = k - k1
    res = ((em + t) * _f64_from_bits((k1 + 1023) << 52)) * _f64_from_bits((k2 + 1023) << 52)
    res = _sel(abs(x) < f8(2.0**-60), x, res)
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
    x = f4(x)
    sub = x < f4(2.0**-126)
    xs = _sel(sub, x * f4(2.0**23), x)
    ix = _bits(xs) - np.int32(0x3F3504F3)  # bits of sqrt(1/2)
    e = ix >> 23
    m = _f32_from_bits(_bits(xs) - (e << 23))
    ef = f4(e) - _sel(sub, f4(23.0), _ZERO_F32)
    lf = _log1p_core_f32(m - _ONE_F32)
    res = ef * _LN2HI_F32 + (lf + ef * _LN2LO_F32)
    res = _sel(x < _INF_F32, res, x)  # +inf and NaN pass through
    res = _sel(x == _ZERO_F32, -_INF_F32, res)
    return _sel(x < _ZERO_F32, _NAN_F32, res)


@_jit
def log_f64(x):
    x = f8(x)
    sub = x < f8(2.0**-1022)
    xs = _sel(sub, x * f8(2.0**52), x)
    ix = _bits(xs) - np.int64(0x3FE6A09E667F3BCD)
    e = ix >> 52
    m = _f64_from_bits(_bits(xs) - (e << 52))
    ef = f8(e) - _sel(sub, f8(52.0), _ZERO_F64)
    lf = _log1p_core_f64(m - _ONE_F64)
    res = ef * _LN2HI_F64 + (lf + ef * _LN2LO_F64)
    res = _sel(x < _INF_F64, res, x)
    res = _sel(x == _ZERO_F64, -_INF_F64, res)
    return _sel(x < _ZERO_F64, _NAN_F64, res)


# ---------------------------------------------------------------------------------------------
# log1p: u = 1 + x rounded, c = (1 + x) - u exactly; log1p(x) = log(u) + c/u, with
# u = 2^e m and c/u ~= (c 2^-e) (1 - f + f^2) (c/u is below half an ulp of the result, so a
# rough reciprocal is enough).


@_jit
def log1p_f32(x):
    x = f4(x)
    u = _ONE_F32 + x
    c = _sel(x > _ONE_F32, _ONE_F32 - (u - x), x - (u - _ONE_F32))
    iu = _bits(u)
    e = (iu - np.int32(0x3F3504F3)) >> 23
    f = _f32_from_bits(iu - (e << 23)) - _ONE_F32
    ec = _sel(e < 100, e, np.int32(100))
    cs = c * _f32_from_bits((127 - ec) << 23)
    ef = f4(e)
    lf = _log1p_core_f32(f)
    res = ef * _LN2HI_F32 + (lf + (cs * (_ONE_F32 - f + f * f) + ef * _LN2LO_F32))
    res = _sel(x < _INF_F32, res, x)
    res = _sel(abs(x) < f4(2.0**-30), x, res)
    res = _sel(x == -_ONE_F32, -_INF_F32, res)
    return _sel(x < -_ONE_F32, _NAN_F32, res)


@_jit
def log1p_f64(x):
    x = f8(x)
    u = _ONE_F64 + x
    c = _sel(x > _ONE_F64, _ONE_F64 - (u - x), x - (u - _ONE_F64))
    iu = _bits(u)
    e = (iu - np.int64(0x3FE6A09E667F3BCD)) >> 52
    f = _f64_from_bits(iu - (e << 52)) - _ONE_F64
    ec = _sel(e < 1000, e, np.int64(1000))
    cs = c * _f64_from_bits((1023 - ec) << 52)
    ef = f8(e)
    lf = _log1p_core_f64(f)
    res = ef * _LN2HI_F64 + (lf + (cs * (_ONE_F64 - f + f * f) + ef * _LN2LO_F64))
    res = _sel(x < _INF_F64, res, x)
    res = _sel(abs(x) < f8(2.0**-60), x, res)
    res = _sel(x == -_ONE_F64, -_INF_F64, res)
    return _sel(x < -_ONE_F64, _NAN_F64, res)


# ---------------------------------------------------------------------------------------------
# tanh: odd polynomial for |x| < 0.55, else 1 - 2 / (exp(2|x|) + 1); |x| clamped where tanh
# rounds to 1 anyway.


@_jit
def tanh_f32(x):
    x = f4(x)
    a = abs(x)
    ac = _sel(a < f4(10.0), a, f4(10.0))
    big = _ONE_F32 - _TWO_F32 / (exp_f32(ac + ac) + _ONE_F32)
    z = x * x
    small = x + x * z * _horner(z, _TANH_F32)
    res = _sel(a < f4(0.55), small, _copysign(big, x))
    res = _sel(x == _ZERO_F32, x, res)  # tanh(-0.0) = -0.0
    return _sel(x != x, x, res)


@_jit
def tanh_f64(x):
    x = f8(x)
    a = abs(x)
    ac = _sel(a < f8(20.0), a, f8(20.0))
    big = _ONE_F64 - _TWO_F64 / (exp_f64(ac + ac) + _ONE_F64)
    z = x * x
    small = x + x * z * _horner(z, _TANH_F64)
    res = _sel(a < f8(0.55), small, _copysign(big, x))
    res = _sel(x == _ZERO_F64, x, res)  # tanh(-0.0) = -0.0
    return _sel(x != x, x, res)


# ---------------------------------------------------------------------------------------------
# sigmoid = 1 / (1 + exp(-x)) computed from e = exp(-|x|) <= 1, which cannot overflow:
# x >= 0: 1 / (1 + e); x < 0: e / (1 + e) (two divisions: e * (1 / (1 + e)) is 3 ulp off).


@_jit
def sigmoid_f32(x):
    x = f4(x)
    e = exp_f32(-abs(x))
    d = _ONE_F32 + e
    return _sel(x >= _ZERO_F32, _ONE_F32 / d, e / d)


@_jit
def sigmoid_f64(x):
    x = f8(x)
    e = exp_f64(-abs(x))
    d = _ONE_F64 + e
    return _sel(x >= _ZERO_F64, _ONE_F64 / d, e / d)


# ---------------------------------------------------------------------------------------------
# softplus = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))


@_jit
def softplus_f32(x):
    x = f4(x)
    lp = log1p_f32(exp_f32(-abs(x)))
    return _sel(x > _ZERO_F32, x + lp, lp)


@_jit
def softplus_f64(x):
    x = f8(x)
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
    x = f4(x)
    a = abs(x)
    z = x * x
    small = x + x * _horner(z, _ERF_SMALL_F32)
    hi = a >= _ERFC_SPLIT_F32
    t = a - _sel(hi, _ERFC_MB_F32, _ERFC_MA_F32)
    large = _ONE_F32 - _horner_sel(t, hi, _ERFC_A_F32, _ERFC_B_F32)
    large = _sel(a < f4(3.92), large, _ONE_F32)
    res = _sel(a < f4(0.8), small, _copysign(large, x))
    return _sel(x != x, x, res)


_SPLIT27 = np.int64(-(1 << 27))  # clears the low 27 mantissa bits


@_jit
def erf_f64(x):
    x = f8(x)
    a = abs(x)
    z = x * x
    small = x + x * _horner(z, _ERF_SMALL_F64)
    ac = _sel(a < f8(6.0), a, f8(6.0))
    hi = ac >= _ERFCX_SPLIT_F64
    t = ac - _sel(hi, _ERFCX_MB_F64, _ERFCX_MA_F64)
    rx = _horner_sel(t, hi, _ERFCX_A_F64, _ERFCX_B_F64)
    # ac^2 = h + l exactly (Dekker): exp(-ac^2) = exp(-h) * (1 - l)
    ah = _f64_from_bits(_bits(ac) & _SPLIT27)
    al = ac - ah
    h = ac * ac
    lo = ((ah * ah - h) + _TWO_F64 * ah * al) + al * al
    erfc = (exp_f64(-h) * (_ONE_F64 - lo)) * rx
    res = _sel(a < f8(0.8), small, _copysign(_ONE_F64 - erfc, x))
    return _sel(x != x, x, res)


# ---------------------------------------------------------------------------------------------
# sin, cos, tan: x = k pi/2 + r, |r| <= pi/4, Cody-Waite reduction; float32 inputs are reduced
# and evaluated in float64.


@_jit
def _trig_reduce_f32(x):
    """(r, q): x = (k + 4n) pi/2 + r with q = k mod 4, r in float64."""
    xd = f8(x)
    kf = _rint(xd * _TWO_OVER_PI)
    p = _PIO2_F32
    r = (((xd - kf * p[0]) - kf * p[1]) - kf * p[2]) - kf * p[3]
    r = _sel(r < _R_MAX, r, _R_MAX)
    r = _sel(r > -_R_MAX, r, -_R_MAX)
    r = _sel(kf == _ZERO_F64, xd, r)  # exact, keeps -0.0
    kq = kf - f8(4.0) * _rint(kf * f8(0.25))  # k mod 4 in [-2, 2], exact
    return r, np.int64(kq) & 3


@_jit
def _sincos_poly_f32(r):
    z = r * r
    s = r + r * z * _horner(z, _SIN_F32)
    c = _ONE_F64 - _HALF_F64 * z + z * z * _horner(z, _COS_F32)
    return s, c


@_jit
def sin_f32(x):
    x = f4(x)
    r, q = _trig_reduce_f32(x)
    s, c = _sincos_poly_f32(r)
    v = _sel((q & 1) == 0, s, c)
    v = _sel((q & 2) == 0, v, -v)
    v = _sel(x == _ZERO_F32, f8(x), v)  # keeps -0.0
    return _sel(abs(x) < _INF_F32, f4(v), x - x)


@_jit
def cos_f32(x):
    x = f4(x)
    r, q = _trig_reduce_f32(x)
    s, c = _sincos_poly_f32(r)
    q = q + 1
    v = _sel((q & 1) == 0, s, c)
    v = _sel((q & 2) == 0, v, -v)
    return _sel(abs(x) < _INF_F32, f4(v), x - x)


@_jit
def tan_f32(x):
    x = f4(x)
    r, q = _trig_reduce_f32(x)
    s, c = _sincos_poly_f32(r)
    v = _sel((q & 1) == 0, s / c, -c / s)
    v = _sel(x == _ZERO_F32, f8(x), v)  # keeps -0.0
    return _sel(abs(x) < _INF_F32, f4(v), x - x)


@_jit
def _trig_reduce_f64(x):
    kf = _rint(x * _TWO_OVER_PI)
    p = _PIO2_F64
    r = ((((x - kf * p[0]) - kf * p[1]) - kf * p[2]) - kf * p[3]) - kf * p[4]
    r = _sel(r < _R_MAX, r, _R_MAX)
    r = _sel(r > -_R_MAX, r, -_R_MAX)
    r = _sel(kf == _ZERO_F64, x, r)
    kq = kf - f8(4.0) * _rint(kf * f8(0.25))
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
def sin_f64(x):
    x = f8(x)
    r, q = _trig_reduce_f64(x)
    s, c = _sincos_poly_f64(r)
    v = _sel((q & 1) == 0, s, c)
    v = _sel((q & 2) == 0, v, -v)
    v = _sel(x == _ZERO_F64, x, v)  # keeps -0.0
    return _sel(abs(x) < _INF_F64, v, x - x)


@_jit
def cos_f64(x):
    x = f8(x)
    r, q = _trig_reduce_f64(x)
    s, c = _sincos_poly_f64(r)
    q = q + 1
    v = _sel((q & 1) == 0, s, c)
    v = _sel((q & 2) == 0, v, -v)
    return _sel(abs(x) < _INF_F64, v, x - x)


@_jit
def tan_f64(x):
    x = f8(x)
    r, q = _trig_reduce_f64(x)
    s, c = _sincos_poly_f64(r)
    v = _sel((q & 1) == 0, s / c, -c / s)
    v = _sel(x == _ZERO_F64, x, v)  # keeps -0.0
    return _sel(abs(x) < _INF_F64, v, x - x)


# ---------------------------------------------------------------------------------------------
# lookup for the code generator

OPS = ("exp", "expm1", "log", "log1p", "tanh", "sigmoid", "softplus", "erf", "sin", "cos", "tan")
DTYPES = ("f32", "f64")


def source_name(op: str, dtype: str) -> str:
    """The name to import from graphc.codegen.mathlib for (op, dtype), e.g. "exp_f32"."""
    if op not in OPS or dtype not in DTYPES:
        raise KeyError(f"mathlib has no {op} for {dtype}")
    return f"{op}_{dtype}"


FUNCS: dict[tuple[str, str], object] = {
    (op, dt): globals()[f"{op}_{dt}"] for op in OPS for dt in DTYPES
}
