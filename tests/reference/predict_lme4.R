# Reference predictions for tests/test_predict.py, made with R's lme4 and metafor.
# Run from the repository root:  Rscript tests/reference/predict_lme4.R
# Writes tests/reference/predict_lme4.json. R is a tool for making test data only.
suppressPackageStartupMessages({
  library(lme4)
  library(metafor)
  library(jsonlite)
})
data_dir <- "src/multilevel/datasets/data"
out <- list(source = paste0("lme4 ", packageVersion("lme4"), ", metafor ",
                            packageVersion("metafor"), ", ", R.version.string))

preds <- function(m, newdata) {
  list(
    newdata = newdata,
    conditional_link = unname(predict(m, newdata, allow.new.levels = TRUE, type = "link")),
    conditional_response = unname(predict(m, newdata, allow.new.levels = TRUE,
                                          type = "response")),
    population_link = unname(predict(m, newdata, re.form = NA, type = "link")),
    population_response = unname(predict(m, newdata, re.form = NA, type = "response")),
    fitted = unname(fitted(m)),
    # lme4's own estimates, so the prediction arithmetic can be checked apart from the fit
    fixef = as.list(fixef(m)),
    ranef = lapply(ranef(m), function(r) list(levels = rownames(r), terms = colnames(r),
                                              values = unname(as.matrix(r))))
  )
}

cbpp <- read.csv(file.path(data_dir, "cbpp.csv"), colClasses = c(herd = "character",
                                                                   period = "character"))
cbpp$herd <- factor(cbpp$herd, levels = as.character(1:15))
m <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial)
nd <- data.frame(period = c("1", "2", "4", "3", "1"), herd = c("1", "7", "15", "99", "99"),
                 size = c(10, 20, 5, 8, 8))
out$cbpp <- c(list(formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                   method = "Laplace"), preds(m, nd))

contra <- read.csv(file.path(data_dir, "Contraception.csv"))
contra$district <- factor(contra$district)
contra$use <- factor(contra$use, levels = c("N", "Y"))
contra$urban <- factor(contra$urban, levels = c("N", "Y"))
contra$livch <- factor(contra$livch, levels = c("0", "1", "2", "3+"))
m <- glmer(use ~ urban + age + I(age^2) + livch + (1 + urban | district), contra,
           family = binomial)
nd <- data.frame(urban = c("Y", "N", "Y", "N"), age = c(-10.5, 0, 12.25, 3),
                 livch = c("0", "3+", "1", "2"), district = c("1", "35", "61", "new"))
out$contraception <- c(list(
  formula = "use ~ urban + age + I(age^2) + livch + (1 + urban | district)",
  method = "Laplace"), preds(m, nd))

hsb <- read.csv(file.path(data_dir, "Hsb82.csv"))
hsb$school <- factor(hsb$school)
hsb$sector <- factor(hsb$sector, levels = c("Public", "Catholic"))
m <- lmer(mAch ~ scale(ses) + sector + (1 + cses | school), hsb)
# The newdata's ses is far from the training mean (-0.0003) and sd (0.78): predictions must use
# the training centre and scale (lme4's predvars), not the newdata's.
nd <- data.frame(ses = c(1.5, 2.0, 2.5, 3.0), cses = c(0.5, -0.5, 1.0, 0.0),
                 sector = c("Public", "Catholic", "Catholic", "Public"),
                 school = c("1224", "9586", "1288", "0000"))
out$hsb82_scale <- c(list(formula = "mAch ~ scale(ses) + sector + (1 + cses | school)",
                          method = "REML"), preds(m, nd))

bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
r <- rma(yi, vi, data = bcg, method = "REML")
p <- predict(r)
out$bcg <- list(
  data = data.frame(trial = as.character(bcg$trial), yi = as.numeric(bcg$yi),
                    sei = sqrt(as.numeric(bcg$vi))),
  formula = "yi | se(sei) ~ 1 + (1 | trial)", tau2 = r$tau2, beta = as.numeric(r$beta),
  pred = p$pred, se = p$se, ci_lower = p$ci.lb, ci_upper = p$ci.ub, pi_lower = p$pi.lb,
  pi_upper = p$pi.ub,
  blup = as.numeric(blup(r)$pred)
)
write_json(out, "tests/reference/predict_lme4.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
