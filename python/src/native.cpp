// Fused data-preparation kernel: counts (or TPM / log TPM) -> aligned log1p TPM.
//
// One pass per sample (row), rows in parallel with OpenMP, GIL released: the
// per-gene rate count/length_kb is summed in double, scaled to TPM, scattered into
// the vocabulary positions (collisions summed, or averaged via `divisor`), log1p'd and
// written as float32; vocabulary genes the input lacks get `mask_value`. No temporary
// of the input's size is made, which is where the NumPy path spends its memory.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace py = pybind11;

namespace {

struct Plan {
    int64_t n_rows, n_cols, n_vocab;
    int64_t row_stride, col_stride;  // in elements
    const int64_t* column_index;     // (n_cols,) vocabulary position or -1
    const double* inv_length_kb;     // (n_cols,) 1000 / length, or nullptr
    const double* lengths_bp;        // (n_rows, n_cols) C-contiguous per-sample lengths, or nullptr
    const uint8_t* measured;         // (n_vocab,)
    const double* divisor;           // (n_vocab,) multiplicity for averaging, or nullptr
    bool normalize, log1p_values;
    float mask_value;
    float* out;                      // (n_rows, n_vocab) C-contiguous
};

// log1p for x >= 0, branch-free so that the per-row loop vectorises (libm's log1p is
// a scalar call and dominated the kernel's time). log(u) for u = 1 + x from the
// exponent and an atanh series on the mantissa in [sqrt(1/2), sqrt(2)) (truncation
// < 1e-12), then Goldberg's correction log1p(x) = log(u) * x / (u - 1), which keeps
// full relative accuracy for tiny x. Agrees with std::log1p to ~1e-15 relative.
// no-trapping-math: lets GCC if-convert and vectorise (FP exceptions are never read here)
#if defined(__GNUC__) && !defined(__clang__)
#define BF_VECTORISE_MATH __attribute__((optimize("no-trapping-math")))
#else
#define BF_VECTORISE_MATH
#endif

BF_VECTORISE_MATH static inline double log1p_nonnegative(double x) {
    const double u = 1.0 + x;
    uint64_t bits;
    std::memcpy(&bits, &u, sizeof bits);
    const int32_t high = static_cast<int32_t>(bits >> 32);
    double exponent = static_cast<double>((high >> 20) - 1023);
    uint64_t mantissa_bits = (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
    double m;
    std::memcpy(&m, &mantissa_bits, sizeof m);
    // integer tests and arithmetic selects instead of branches
    const double upper = static_cast<double>(static_cast<int32_t>((mantissa_bits >> 32) > 0x3ff6a09eULL));  // m > sqrt(2)
    m *= 1.0 - 0.5 * upper;
    exponent += upper;
    const double s = (m - 1.0) / (m + 1.0);
    const double s2 = s * s;
    const double series = s * (2.0 + s2 * (2.0 / 3 + s2 * (2.0 / 5 + s2 * (2.0 / 7 + s2 * (2.0 / 9 + s2 * (2.0 / 11 + s2 * (2.0 / 13 + s2 * (2.0 / 15))))))));
    const double log_u = exponent * 0.6931471805599453 + series;
    // u == 1 (x below half an ulp of 1): log_u is 0 and the answer is x itself
    const double denominator = u - 1.0;
    const double tiny = static_cast<double>(static_cast<int32_t>(bits == 0x3ff0000000000000ULL));
    return log_u * (x / (denominator + tiny)) + tiny * x;
}

// The per-row finish: scaled sums -> float32 log1p. Cloned for AVX2 and picked at run
// time, so one portable build still uses wide vectors where the CPU has them.
__attribute__((target_clones("avx2", "default"))) BF_VECTORISE_MATH
void finish_row(const double* buffer, const double* inverse_divisor, bool log1p_values, float* out_row, int64_t n) {
    if (log1p_values) {
        if (inverse_divisor) {
            for (int64_t g = 0; g < n; ++g) out_row[g] = static_cast<float>(log1p_nonnegative(buffer[g] * inverse_divisor[g]));
        } else {
            for (int64_t g = 0; g < n; ++g) out_row[g] = static_cast<float>(log1p_nonnegative(buffer[g]));
        }
    } else if (inverse_divisor) {
        for (int64_t g = 0; g < n; ++g) out_row[g] = static_cast<float>(buffer[g] * inverse_divisor[g]);
    } else {
        for (int64_t g = 0; g < n; ++g) out_row[g] = static_cast<float>(buffer[g]);
    }
}

template <typename T, bool Contiguous>
double row_total(const T* row, int64_t n, int64_t stride, const double* inv_length_kb, const double* row_lengths) {
    double total = 0.0;
    if (row_lengths) {
        for (int64_t j = 0; j < n; ++j)
            total += static_cast<double>(row[Contiguous ? j : j * stride]) * (1000.0 / row_lengths[j]);
    } else {
        for (int64_t j = 0; j < n; ++j)
            total += static_cast<double>(row[Contiguous ? j : j * stride]) * inv_length_kb[j];
    }
    return total;
}

// Per-call lookups shared by both kernels, built once: the matched input columns and
// their vocabulary targets (so the scatter loop skips unmatched ones), the vocabulary
// genes the data lacks, and reciprocal divisors for averaging collapsed genes.
struct Lookups {
    std::vector<int64_t> columns, targets, unmeasured;
    std::vector<double> inverse_divisor;

    explicit Lookups(const Plan& p) {
        for (int64_t j = 0; j < p.n_cols; ++j)
            if (p.column_index[j] >= 0) { columns.push_back(j); targets.push_back(p.column_index[j]); }
        for (int64_t g = 0; g < p.n_vocab; ++g)
            if (!p.measured[g]) unmeasured.push_back(g);
        if (p.divisor) {
            inverse_divisor.resize(static_cast<size_t>(p.n_vocab));
            for (int64_t g = 0; g < p.n_vocab; ++g) inverse_divisor[g] = 1.0 / p.divisor[g];
        }
    }
};

template <typename T, bool Contiguous>
void run(const T* data, const Plan& p, int n_threads, std::string& error) {
    const Lookups lookups(p);
    const auto& [columns, targets, unmeasured, inverse_divisor] = lookups;
    const int64_t n_matched = static_cast<int64_t>(columns.size());
    int64_t failed_row = -1;
#pragma omp parallel num_threads(n_threads)
    {
        std::vector<double> buffer(static_cast<size_t>(p.n_vocab));
#pragma omp for schedule(dynamic, 4)
        for (int64_t i = 0; i < p.n_rows; ++i) {
            const T* row = data + i * p.row_stride;
            const double* row_lengths = p.lengths_bp ? p.lengths_bp + i * p.n_cols : nullptr;
            double scale = 1.0;
            if (p.normalize) {
                const double total = row_total<T, Contiguous>(row, p.n_cols, p.col_stride, p.inv_length_kb, row_lengths);
                if (!(total > 0.0)) {
#pragma omp critical
                    failed_row = i;
                    continue;
                }
                scale = 1e6 / total;
            }
            std::fill(buffer.begin(), buffer.end(), 0.0);
            for (int64_t k = 0; k < n_matched; ++k) {
                const int64_t j = columns[k];
                double value = static_cast<double>(row[Contiguous ? j : j * p.col_stride]);
                if (p.normalize) value *= (row_lengths ? 1000.0 / row_lengths[j] : p.inv_length_kb[j]) * scale;
                buffer[targets[k]] += value;
            }
            float* out_row = p.out + i * p.n_vocab;
            finish_row(buffer.data(), p.divisor ? inverse_divisor.data() : nullptr, p.log1p_values, out_row, p.n_vocab);
            for (const int64_t g : unmeasured) out_row[g] = p.mask_value;
        }
    }
    if (failed_row >= 0)
        error = "row " + std::to_string(failed_row) + " has no positive expression (sum of count/length is 0)";
}

// Samples adjacent in memory (a genes x samples matrix, as R and TCGA files store it,
// seen transposed): walking one sample would touch a new cache line per gene, so
// blocks of kBlock samples go through together, the inner loops running over samples.
constexpr int64_t kBlock = 16;

template <typename T>
void run_sample_blocks(const T* data, const Plan& p, int n_threads, std::string& error) {
    const Lookups lookups(p);
    const auto& [columns, targets, unmeasured, inverse_divisor] = lookups;
    const int64_t n_matched = static_cast<int64_t>(columns.size());
    const int64_t n_blocks = (p.n_rows + kBlock - 1) / kBlock;
    int64_t failed_row = -1;
#pragma omp parallel num_threads(n_threads)
    {
        std::vector<double> sums(static_cast<size_t>(p.n_vocab * kBlock));  // [gene][sample in block]
        std::vector<double> row_buffer(static_cast<size_t>(p.n_vocab));
#pragma omp for schedule(dynamic, 1)
        for (int64_t block = 0; block < n_blocks; ++block) {
            const int64_t first = block * kBlock;
            const int64_t width = std::min(kBlock, p.n_rows - first);
            double scale[kBlock];
            for (int64_t b = 0; b < kBlock; ++b) scale[b] = 1.0;
            if (p.normalize) {
                double total[kBlock] = {0.0};
                for (int64_t j = 0; j < p.n_cols; ++j) {
                    const T* column = data + j * p.col_stride + first;
                    const double weight = p.inv_length_kb[j];
                    for (int64_t b = 0; b < width; ++b) total[b] += static_cast<double>(column[b]) * weight;
                }
                bool ok = true;
                for (int64_t b = 0; b < width; ++b) {
                    if (!(total[b] > 0.0)) {
#pragma omp critical
                        failed_row = first + b;
                        ok = false;
                    }
                    scale[b] = 1e6 / total[b];
                }
                if (!ok) continue;
            }
            std::fill(sums.begin(), sums.end(), 0.0);
            for (int64_t k = 0; k < n_matched; ++k) {
                const int64_t j = columns[k];
                const T* column = data + j * p.col_stride + first;
                const double weight = p.normalize ? p.inv_length_kb[j] : 1.0;
                double* target = sums.data() + targets[k] * kBlock;
                for (int64_t b = 0; b < width; ++b) target[b] += static_cast<double>(column[b]) * weight * scale[b];
            }
            for (int64_t b = 0; b < width; ++b) {
                for (int64_t g = 0; g < p.n_vocab; ++g) row_buffer[g] = sums[g * kBlock + b];
                float* out_row = p.out + (first + b) * p.n_vocab;
                finish_row(row_buffer.data(), p.divisor ? inverse_divisor.data() : nullptr, p.log1p_values, out_row, p.n_vocab);
                for (const int64_t g : unmeasured) out_row[g] = p.mask_value;
            }
        }
    }
    if (failed_row >= 0)
        error = "row " + std::to_string(failed_row) + " has no positive expression (sum of count/length is 0)";
}

template <typename T>
void dispatch(const T* data, const Plan& p, int n_threads, std::string& error) {
    if (p.col_stride == 1) run<T, true>(data, p, n_threads, error);
    else if (p.row_stride == 1 && !p.lengths_bp && p.n_rows > 1) run_sample_blocks<T>(data, p, n_threads, error);
    else run<T, false>(data, p, n_threads, error);
}

template <typename T>
const T* typed(const py::array& a) { return static_cast<const T*>(a.data()); }

void aligned_transform(py::array data, py::array_t<int64_t, py::array::c_style | py::array::forcecast> column_index,
                       py::object inv_length_kb, py::object lengths_bp,
                       py::array_t<uint8_t, py::array::c_style | py::array::forcecast> measured, py::object divisor,
                       bool normalize, bool log1p_values, float mask_value,
                       py::array_t<float, py::array::c_style> out, int n_threads) {
    if (data.ndim() != 2) throw std::invalid_argument("data must be 2-D (samples x genes)");
    Plan p{};
    p.n_rows = data.shape(0);
    p.n_cols = data.shape(1);
    p.n_vocab = out.ndim() == 2 ? out.shape(1) : -1;
    if (out.ndim() != 2 || out.shape(0) != p.n_rows) throw std::invalid_argument("out must be (n_samples, n_vocab) float32");
    if (column_index.size() != p.n_cols) throw std::invalid_argument("column_index must have one entry per input gene");
    if (measured.size() != p.n_vocab) throw std::invalid_argument("measured must have one entry per vocabulary gene");
    const auto itemsize = static_cast<int64_t>(data.itemsize());
    p.row_stride = data.strides(0) / itemsize;
    p.col_stride = data.strides(1) / itemsize;
    if (data.strides(0) % itemsize || data.strides(1) % itemsize) throw std::invalid_argument("data strides must be whole elements");
    p.column_index = column_index.data();
    for (int64_t j = 0; j < p.n_cols; ++j)
        if (p.column_index[j] >= p.n_vocab) throw std::invalid_argument("column_index out of range");
    p.measured = measured.data();
    p.normalize = normalize;
    p.log1p_values = log1p_values;
    p.mask_value = mask_value;
    p.out = out.mutable_data();

    // keep converted arrays alive for the whole call
    py::array_t<double, py::array::c_style | py::array::forcecast> inv, lens, div;
    if (!inv_length_kb.is_none()) {
        inv = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(inv_length_kb);
        if (!inv || inv.size() != p.n_cols) throw std::invalid_argument("inv_length_kb must have one entry per input gene");
        p.inv_length_kb = inv.data();
    }
    if (!lengths_bp.is_none()) {
        lens = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(lengths_bp);
        if (!lens || lens.ndim() != 2 || lens.shape(0) != p.n_rows || lens.shape(1) != p.n_cols)
            throw std::invalid_argument("lengths_bp must be (n_samples, n_genes)");
        p.lengths_bp = lens.data();
    }
    if (normalize && !p.inv_length_kb && !p.lengths_bp) throw std::invalid_argument("normalize needs lengths");
    if (!divisor.is_none()) {
        div = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(divisor);
        if (!div || div.size() != p.n_vocab) throw std::invalid_argument("divisor must have one entry per vocabulary gene");
        p.divisor = div.data();
    }
#ifdef _OPENMP
    if (n_threads <= 0) n_threads = omp_get_max_threads();
#else
    n_threads = 1;
#endif
    std::string error;
    const char kind = data.dtype().kind();
    const auto size = data.itemsize();
    {
        py::gil_scoped_release release;
        if (kind == 'f' && size == 8) dispatch(typed<double>(data), p, n_threads, error);
        else if (kind == 'f' && size == 4) dispatch(typed<float>(data), p, n_threads, error);
        else if (kind == 'i' && size == 8) dispatch(typed<int64_t>(data), p, n_threads, error);
        else if (kind == 'i' && size == 4) dispatch(typed<int32_t>(data), p, n_threads, error);
        else if (kind == 'u' && size == 4) dispatch(typed<uint32_t>(data), p, n_threads, error);
        else if (kind == 'u' && size == 8) dispatch(typed<uint64_t>(data), p, n_threads, error);
        else error = "unsupported dtype";
    }
    if (!error.empty()) throw std::invalid_argument(error);
}

int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

}  // namespace

PYBIND11_MODULE(_native, m) {
    m.doc() = "Fused, multi-threaded counts -> aligned log1p TPM kernel (GIL released)";
    m.def("aligned_transform", &aligned_transform, py::arg("data"), py::arg("column_index"),
          py::arg("inv_length_kb"), py::arg("lengths_bp"), py::arg("measured"), py::arg("divisor"),
          py::arg("normalize"), py::arg("log1p_values"), py::arg("mask_value"), py::arg("out"),
          py::arg("n_threads") = 0);
    m.def("max_threads", &max_threads);
}
