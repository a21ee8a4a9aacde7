# nlme references for AR(1)/CAR(1) residual models (tests/test_serial.py).
# Run from the project root:  Rscript tests/reference/serial_nlme.R
# Needs: apt-get install r-cran-nlme r-cran-cardata r-cran-jsonlite
suppressPackageStartupMessages({library(nlme); library(jsonlite); library(carData)})

# A simulated panel with known truth: 80 subjects, integer times 0..7 with ~25% of visits
# missing (irregular lags), random intercept and slope, AR(1) residuals with phi = 0.55.
set.seed(20261129)
n_sub <- 80; times <- 0:7
rows <- list()
for (s in seq_len(n_sub)) {
  keep <- times[runif(length(times)) > 0.25]
  if (length(keep) < 3) keep <- times[1:3]
  b0 <- rnorm(1, 0, 1.0); b1 <- rnorm(1, 0, 0.25)
  trt <- as.integer(s %% 2 == 0)
  # AR(1) at every integer time, observed at `keep`
  e <- numeric(length(times)); e[1] <- rnorm(1)
  for (k in 2:length(times)) e[k] <- 0.55 * e[k - 1] + sqrt(1 - 0.55^2) * rnorm(1)
  y <- 2 + 0.3 * times + 0.5 * trt + b0 + b1 * times + 0.8 * e
  rows[[s]] <- data.frame(id = sprintf("s%03d", s), time = times, trt = trt, y = y)[times %in% keep, ]
}
sim <- do.call(rbind, rows)
sim$id <- factor(sim$id)
write.csv(sim, "tests/reference/ar1_sim.csv", row.names = FALSE)
sim <- read.csv("tests/reference/ar1_sim.csv"); sim$id <- factor(sim$id)

bm <- Blackmore; bm$log_exercise <- log(bm$exercise + 1)
ctrl <- lmeControl(maxIter = 500, msMaxIter = 500, niterEM = 100, tolerance = 1e-10,
                   msTol = 1e-10)

one <- function(fit, formula, data_name, corr) {
  fe <- summary(fit)$tTable
  vc <- VarCorr(fit)
  sds <- suppressWarnings(as.numeric(vc[, "StdDev"]))
  names(sds) <- rownames(vc)
  phi <- if (is.null(fit$modelStruct$corStruct)) NULL else
    unname(coef(fit$modelStruct$corStruct, unconstrained = FALSE))
  list(formula = formula, data = data_name, correlation = corr, method = fit$method,
       fixed_effects = lapply(split(fe[, 1:2], seq_len(nrow(fe))), function(r)
         list(estimate = r[1], std_error = r[2])) |> setNames(rownames(fe)),
       sds = as.list(sds), phi = phi, logLik = as.numeric(logLik(fit)),
       AIC = AIC(fit), BIC = BIC(fit), nobs = nobs(fit))
}

out <- list()
f <- y ~ time + trt
out$sim_ar1_reml <- one(lme(f, random = ~ time | id, data = sim, correlation = corAR1(form = ~ time | id),
                            method = "REML", control = ctrl),
                        "y ~ time + trt + (time | id) + ar1(time | id)", "ar1_sim.csv", "ar1")
out$sim_ar1_ml <- one(lme(f, random = ~ time | id, data = sim, correlation = corAR1(form = ~ time | id),
                          method = "ML", control = ctrl),
                      "y ~ time + trt + (time | id) + ar1(time | id)", "ar1_sim.csv", "ar1")
out$sim_car1_ri <- one(lme(f, random = ~ 1 | id, data = sim, correlation = corCAR1(form = ~ time | id),
                           method = "REML", control = ctrl),
                       "y ~ time + trt + (1 | id) + car1(time | id)", "ar1_sim.csv", "car1")
out$sim_ar1_diag <- one(lme(f, random = list(id = pdDiag(~ time)), data = sim,
                            correlation = corAR1(form = ~ time | id), method = "REML", control = ctrl),
                        "y ~ time + trt + (time || id) + ar1(time | id)", "ar1_sim.csv", "ar1")
out$blackmore_car1 <- one(lme(log_exercise ~ age * group, random = ~ age | subject, data = bm,
                              correlation = corCAR1(form = ~ age | subject), method = "REML", control = ctrl),
                          "log_exercise ~ age * group + (age | subject) + car1(age | subject)",
                          "blackmore", "car1")
out$blackmore_ar1_ml <- one(lme(log_exercise ~ age * group, random = ~ age | subject, data = bm,
                                correlation = corAR1(form = ~ age | subject), method = "ML", control = ctrl),
                            "log_exercise ~ age * group + (age | subject) + ar1(age | subject)",
                            "blackmore", "ar1")
out$source <- paste("nlme", packageVersion("nlme"), "lme() with corAR1/corCAR1; R", getRversion())
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/serial_nlme.json")
