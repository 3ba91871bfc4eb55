// B_i and the per-pair Jacobian dB_i/dr_ij of the bispectrum through LAMMPS' own SNA class (ML-SNAP):
// the work LAMMPS' `compute snap` does per atom (compute_ui, compute_zi, compute_bi, then per neighbour
// compute_duidrj and compute_dbidrj), on mliap_torch's pair list. Built by torch.utils.cpp_extension
// against the project's LAMMPS (mliap_torch/descriptors/sna_backend.py); the SNA lives in a LAMMPS
// instance the Python side creates, passed here by address. With OpenMP the atoms are shared among
// threads, one SNA per thread (SNA keeps per-atom work arrays).
#include <torch/extension.h>

#include "lammps.h"
#include "sna.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef __linux__
#include <sys/mman.h>
#endif

#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

namespace {

// Ask for transparent huge pages on a large, not yet touched output (where the kernel gives them on request):
// first-touch page faults of the per-pair Jacobian otherwise cost as much as the chemflag descriptor itself.
void advise_huge_pages(void *data, size_t bytes)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const uintptr_t page = 4096, begin = (reinterpret_cast<uintptr_t>(data) + page - 1) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(page - 1);
  if (bytes >= (size_t{2} << 20) && end > begin) madvise(reinterpret_cast<void *>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void) data;
  (void) bytes;
#endif
}

class SNAJacobian {
 public:
  // Settings as LAMMPS' compute snap takes them; radelem, wj, sinner, dinner: (nelements,)
  SNAJacobian(int64_t lammps_address, double rfac0, int64_t twojmax, double rmin0, double rcutfac, bool switchflag,
              bool bzeroflag, bool chemflag, bool bnormflag, bool wselfallflag, bool switchinnerflag,
              std::vector<double> radelem, std::vector<double> wj, std::vector<double> sinner,
              std::vector<double> dinner)
      : rcutfac_(rcutfac), chemflag_(chemflag), switchinnerflag_(switchinnerflag), radelem_(std::move(radelem)),
        wj_(std::move(wj)), sinner_(std::move(sinner)), dinner_(std::move(dinner))
  {
    auto *lmp = reinterpret_cast<LAMMPS_NS::LAMMPS *>(lammps_address);
    const int nelements = static_cast<int>(radelem_.size());
    for (int t = 0; t < max_threads(); t++) {
      sna_.push_back(std::make_unique<LAMMPS_NS::SNA>(lmp, rfac0, static_cast<int>(twojmax), rmin0, switchflag,
                                                      bzeroflag, chemflag, bnormflag, wselfallflag, nelements,
                                                      switchinnerflag));
      sna_.back()->init();
    }
  }

  int64_t num_descriptors() const { return sna_[0]->ncoeff; }

  // rij (nkept, 3) Å, pairs grouped by central atom (starts: (natoms + 1,) offsets), all inside their
  // cutoff; species_i (natoms,), species_j (nkept,) element indices; pair_index (nkept,): each pair's row
  // in the full pair list of total_pairs rows. Returns B (natoms, K) and dB (total_pairs, 3, K) with
  // dB[pair_index[p], :, k] = dB_k(i) / d rij[p] and zero rows for the pairs not given.
  std::vector<at::Tensor> compute(const at::Tensor &rij, const at::Tensor &starts, const at::Tensor &species_i,
                                  const at::Tensor &species_j, const at::Tensor &pair_index, int64_t total_pairs)
  {
    TORCH_CHECK(rij.dtype() == at::kDouble && rij.is_contiguous() && rij.dim() == 2 && rij.size(1) == 3,
                "rij must be a contiguous (npairs, 3) float64 tensor");
    TORCH_CHECK(starts.dtype() == at::kLong && species_i.dtype() == at::kLong && species_j.dtype() == at::kLong &&
                    pair_index.dtype() == at::kLong,
                "starts, species and pair_index must be int64");
    const int64_t natoms = species_i.size(0), npairs = rij.size(0), K = sna_[0]->ncoeff;
    TORCH_CHECK(starts.size(0) == natoms + 1 && species_j.size(0) == npairs && pair_index.size(0) == npairs,
                "inconsistent sizes");
    at::Tensor B = at::empty({natoms, K}, rij.options());
    at::Tensor dB = at::empty({total_pairs, 3, K}, rij.options());
    advise_huge_pages(dB.data_ptr(), static_cast<size_t>(dB.numel()) * sizeof(double));
    const double *r = rij.data_ptr<double>();
    const int64_t *start = starts.data_ptr<int64_t>();
    const int64_t *si = species_i.data_ptr<int64_t>();
    const int64_t *sj = species_j.data_ptr<int64_t>();
    const int64_t *row = pair_index.data_ptr<int64_t>();
    double *b = B.data_ptr<double>();
    double *db = dB.data_ptr<double>();
    std::vector<char> given(static_cast<size_t>(total_pairs), 0);
    for (int64_t p = 0; p < npairs; p++) {
      TORCH_CHECK(row[p] >= 0 && row[p] < total_pairs, "pair_index out of range");
      given[static_cast<size_t>(row[p])] = 1;
    }
    for (int64_t q = 0; q < total_pairs; q++)
      if (!given[static_cast<size_t>(q)]) std::fill(db + q * 3 * K, db + (q + 1) * 3 * K, 0.0);
    const int threads = static_cast<int>(std::min<int64_t>({static_cast<int64_t>(at::get_num_threads()), static_cast<int64_t>(sna_.size()), natoms}));
#pragma omp parallel for schedule(dynamic, 8) num_threads(threads > 0 ? threads : 1)
    for (int64_t i = 0; i < natoms; i++) {
      LAMMPS_NS::SNA *sna = sna_[static_cast<size_t>(thread_index())].get();
      const int64_t first = start[i], n = start[i + 1] - start[i];
      const int ielem = static_cast<int>(si[i]);
      sna->grow_rij(static_cast<int>(n));
      for (int64_t jj = 0; jj < n; jj++) {
        const int64_t p = first + jj;
        const int jelem = static_cast<int>(sj[p]);
        for (int d = 0; d < 3; d++) sna->rij[jj][d] = r[3 * p + d];
        sna->inside[jj] = static_cast<int>(jj);
        sna->wj[jj] = wj_[jelem];
        sna->rcutij[jj] = (radelem_[ielem] + radelem_[jelem]) * rcutfac_;
        if (switchinnerflag_) {
          sna->sinnerij[jj] = 0.5 * (sinner_[ielem] + sinner_[jelem]);
          sna->dinnerij[jj] = 0.5 * (dinner_[ielem] + dinner_[jelem]);
        }
        if (chemflag_) sna->element[jj] = jelem;
      }
      const int center = chemflag_ ? ielem : 0;
      sna->compute_ui(static_cast<int>(n), center);
      sna->compute_zi();
      sna->compute_bi(center);
      std::copy(sna->blist, sna->blist + K, b + i * K);
      for (int64_t jj = 0; jj < n; jj++) {
        sna->compute_duidrj(static_cast<int>(jj));
        sna->compute_dbidrj();
        double *out = db + row[first + jj] * 3 * K;
        for (int64_t k = 0; k < K; k++)
          for (int d = 0; d < 3; d++) out[d * K + k] = sna->dblist[k][d];
      }
    }
    return {B, dB};
  }

 private:
  static int max_threads()
  {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
  }
  static int thread_index()
  {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
  }

  std::vector<std::unique_ptr<LAMMPS_NS::SNA>> sna_;  // one per OpenMP thread
  double rcutfac_;
  bool chemflag_, switchinnerflag_;
  std::vector<double> radelem_, wj_, sinner_, dinner_;
};

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m)
{
  pybind11::class_<SNAJacobian>(m, "SNAJacobian")
      .def(pybind11::init<int64_t, double, int64_t, double, double, bool, bool, bool, bool, bool, bool,
                          std::vector<double>, std::vector<double>, std::vector<double>, std::vector<double>>())
      .def("num_descriptors", &SNAJacobian::num_descriptors)
      .def("compute", &SNAJacobian::compute);
}
